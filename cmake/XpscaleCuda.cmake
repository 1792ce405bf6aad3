# Finds CUDA and NCCL (under /usr/local/cuda by default) and sets
# XPSCALE_HAVE_CUDA. XPSCALE_CUDA=ON makes their absence an error, OFF skips
# the search, AUTO builds the CUDA targets when both are found. No GPU is
# needed to compile: the architectures are explicit because "native" fails
# on a machine without one.
set(XPSCALE_HAVE_CUDA OFF)
if(NOT XPSCALE_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "XPSCALE_CUDA must be AUTO, ON or OFF, got '${XPSCALE_CUDA}'")
endif()
if(NOT XPSCALE_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit)
    find_path(XPSCALE_NCCL_INCLUDE_DIR nccl.h
      HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
    find_library(XPSCALE_NCCL_LIBRARY nccl
      HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64 /usr/local/cuda/lib)
  endif()
  if(CUDAToolkit_FOUND AND XPSCALE_NCCL_INCLUDE_DIR AND XPSCALE_NCCL_LIBRARY)
    set(XPSCALE_HAVE_CUDA ON)
    add_library(xpscale_nccl_lib UNKNOWN IMPORTED)
    set_target_properties(xpscale_nccl_lib PROPERTIES
      IMPORTED_LOCATION "${XPSCALE_NCCL_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${XPSCALE_NCCL_INCLUDE_DIR}")
    message(STATUS "xpscale: CUDA ${CUDAToolkit_VERSION} and NCCL (${XPSCALE_NCCL_LIBRARY}) found; "
                   "CUDA architectures ${CMAKE_CUDA_ARCHITECTURES}")
  elseif(XPSCALE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "XPSCALE_CUDA=ON but CUDA (nvcc) or NCCL was not found")
  else()
    message(STATUS "xpscale: CUDA or NCCL not found; building without the GPU targets")
  endif()
endif()
