#pragma once
// What this build and this machine offer for GPU collectives. The answers
// come from the CUDA/NCCL target when the build has CUDA (XPSCALE_HAVE_NCCL
// is then defined to 1 for users of xpscale::collectives), and from a
// CPU-only fallback otherwise, so callers never need an #if to ask.
#include <string>

namespace xpscale {

// True when this build links NCCL and the CUDA runtime.
bool built_with_nccl();

// Number of CUDA devices this process may use (after CUDA_VISIBLE_DEVICES).
// 0 when the build has no CUDA, or when the driver is missing, too old, or
// sees no usable device; the CUDA error that said so is cleared so that it
// does not surface in a later, unrelated cudaGetLastError.
// Throws CollectiveError for any other CUDA failure.
int cuda_device_count();

// Why cuda_device_count() is 0, for messages: "built without CUDA", or the
// CUDA runtime's text such as "CUDA driver version is insufficient for CUDA
// runtime version". Empty when at least one device is usable.
std::string cuda_unavailable_reason();

// The version of the NCCL library loaded at run time, "2.28.9"; empty when
// the build has no NCCL. Needs no GPU. Throws CollectiveError if NCCL fails.
std::string nccl_version_string();

// Runs a kernel that fills a buffer on the current device and checks the
// copy back. Returns true when every element matches, false when it does
// not or when the build has no CUDA.
// Throws CollectiveError when a CUDA call fails, e.g. with no device; ask
// cuda_device_count() first.
bool gpu_selftest();

}  // namespace xpscale
