#pragma once
// One run at a time per store: an exclusive lock on `<store>.lock`, held for
// the life of a run (issue: two runs on one out_dir ran every trial twice).
//
// The lock is flock(2) on a file beside the store: the kernel releases it
// when the holder dies, however it dies, so a lock left by a dead process
// is simply free. On NFS (Linux 2.6.12 on, flock(2)'s NOTES) the client
// sends flock as a POSIX lock on the whole file to the server, so it holds
// across hosts; a dead process's lock is released by its host's kernel, a
// dead host's by the server when its lease ends (NFSv4; NFSv3's lock
// manager when the host comes back). CIFS does the same from Linux 5.5 on,
// with SMB's mandatory locks: another host cannot read the holder's text
// (its error says "holder unknown"). Not so with the NFS mount options
// `nolock` or `local_lock=flock|all`, Lustre's `localflock` (`flock` is
// cluster-wide, `noflock` fails here with a StoreError) or BeeGFS without
// tuneUseGlobalFileLocks: there a lock is seen only on its own host.
// The file's text names the holder (host, pid, Slurm job, start time) for
// the error a second run gets; a dead holder's text is overwritten by the
// next run. Many jobs on one sweep is the PostgreSQL store's job, not this.
#include <filesystem>
#include <optional>
#include <string>

namespace xpscale {

class StoreLock {
 public:
  // Takes the lock for the store at `store`, creating the lock file (0600).
  // Throws UserError naming the holder when another live process holds it,
  // StoreError when the file cannot be created or locked.
  explicit StoreLock(const std::filesystem::path& store);
  ~StoreLock();
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

// Who holds the lock of the store at `store` now (the holder's text, host,
// pid, ...), or nullopt when no live process does. Takes nothing.
std::optional<std::string> lock_holder(const std::filesystem::path& store);

// Whether a holder's text (lock_holder()) names this host as the holder's.
bool held_on_this_host(const std::string& holder);

// The lock file of the store at `store`: "<store>.lock".
std::filesystem::path lock_path(const std::filesystem::path& store);

}  // namespace xpscale
