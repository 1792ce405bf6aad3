#pragma once
// Is a path on a network or cluster filesystem, one that other hosts mount
// too (NFS, Lustre, GPFS, SMB, ...)? The SQLite store cannot use WAL there
// (sqlite_store.h): WAL's index is shared memory, which only the processes
// of one host share.
//
// Told from statfs(2)'s f_type, the filesystem's magic number: no mount
// table to parse, and a path inside a bind mount or a container volume
// reports the filesystem it is really on.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace xpscale {

// The name of the network or cluster filesystem whose statfs f_type is
// `f_type` ("NFS", "Lustre", "GPFS", "CIFS", "SMB", "CephFS", "BeeGFS",
// "9p", "FUSE", "AFS", "Panasas", "WekaFS", "GFS2", "OCFS2", ...); nullopt
// for a local filesystem (ext4, xfs, btrfs, tmpfs, overlay, ...) or one it
// does not know. FUSE counts as network: sshfs, GlusterFS, ceph-fuse, s3fs
// and the cloud buckets' FUSE clients are. Only the low 32 bits count (a
// 32-bit f_type comes sign-extended).
std::optional<std::string_view> filesystem_kind(std::uint64_t f_type);

// The network or cluster filesystem `path` is on (filesystem_kind()), or
// nullopt on a local one. A path that does not exist yet is looked up at
// its nearest existing parent; nullopt when statfs fails there too. For
// FUSE the name says which one, from /proc/self/mountinfo: "FUSE (sshfs)".
std::optional<std::string> network_filesystem(const std::filesystem::path& path);

}  // namespace xpscale
