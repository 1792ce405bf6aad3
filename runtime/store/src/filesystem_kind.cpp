#include "xpscale/store/filesystem_kind.h"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace xpscale {

std::optional<std::string_view> filesystem_kind(std::uint64_t f_type) {
  // Magic numbers from <linux/magic.h> where the kernel has the filesystem
  // (NFS, CIFS, SMB2, SMB, Ceph, 9p, FUSE, AFS, Coda, OCFS2), else from
  // the filesystem's own sources (Lustre's LL_SUPER_MAGIC, OrangeFS's
  // ORANGEFS_SUPER_MAGIC, GFS2's gfs2_ondisk.h), and for the proprietary
  // ones (GPFS, Panasas, WekaFS, BeeGFS, IBRIX, ACFS) as coreutils' stat
  // and libfuse's fusermount list them.
  switch (f_type & 0xffffffffu) {
    case 0x6969:
      return "NFS";
    case 0x0BD00BD0:
      return "Lustre";
    case 0x47504653:
      return "GPFS";  // IBM Storage Scale
    case 0xFF534D42:
      return "CIFS";
    case 0xFE534D42:  // the cifs module speaking SMB 2 or 3
    case 0x517B:      // the old smbfs
      return "SMB";
    case 0x00C36400:
      return "CephFS";
    case 0x19830326:
      return "BeeGFS";  // formerly FhGFS
    case 0x01021997:
      return "9p";  // also WSL 2's view of the Windows drives
    case 0x65735546:
      return "FUSE";
    case 0x5346414F:  // OpenAFS
    case 0x6B414653:  // the kernel's kAFS
      return "AFS";
    case 0xAAD7AAEA:
      return "Panasas";
    case 0x18031977:
      return "WekaFS";
    case 0x01161970:
      return "GFS2";
    case 0x7461636F:
      return "OCFS2";
    case 0x20030528:
      return "OrangeFS";
    case 0x73757245:
      return "Coda";
    case 0x013111A8:
      return "IBRIX";
    case 0x61636673:
      return "ACFS";
    case 0x564C:
      return "NCP";
    case 0x786F4256:
      return "VirtualBox shared folder";
    case 0xBACBACBC:
      return "VMware shared folder";
    default:
      return std::nullopt;
  }
}

namespace {

// The filesystem type /proc/self/mountinfo gives the mount of device
// `dev` ("fuse.sshfs", "virtiofs"), or "" when it is not listed there.
std::string mount_type(dev_t dev) {
  std::ifstream in("/proc/self/mountinfo");
  const std::string want = std::to_string(major(dev)) + ":" + std::to_string(minor(dev));
  std::string line;
  while (std::getline(in, line)) {
    // "ID PARENT MAJOR:MINOR ROOT POINT OPTIONS [TAGS...] - TYPE SOURCE OPTIONS"
    std::istringstream fields(line);
    std::string id, parent, device;
    if (!(fields >> id >> parent >> device) || device != want) continue;
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string type;
    tail >> type;
    return type;
  }
  return "";
}

}  // namespace

std::optional<std::string> network_filesystem(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path at = std::filesystem::absolute(path, ec);
  if (ec) at = path;
  struct statfs fs {};
  for (;;) {
    if (::statfs(at.c_str(), &fs) == 0) break;
    if ((errno != ENOENT && errno != ENOTDIR) || !at.has_relative_path()) return std::nullopt;
    at = at.parent_path();
  }
  const auto kind = filesystem_kind(static_cast<std::uint64_t>(fs.f_type));
  if (!kind) return std::nullopt;
  std::string name(*kind);
  struct stat st {};
  if (name == "FUSE" && ::stat(at.c_str(), &st) == 0) {
    std::string type = mount_type(st.st_dev);
    if (type.starts_with("fuse.")) type.erase(0, 5);
    if (!type.empty() && type != "fuse" && type != "fuseblk") name += " (" + type + ")";
  }
  return name;
}

}  // namespace xpscale
