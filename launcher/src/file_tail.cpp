// The tail of a trial's output file, as valid UTF-8 (process.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

#include "process_tree.h"
#include "xpscale/core/error.h"
#include "xpscale/core/utf8.h"
#include "xpscale/launcher/process.h"

namespace xpscale::launcher {

std::string file_tail(const std::filesystem::path& path, std::size_t max_bytes) {
  detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return "";
    throw Error("cannot read '" + path.string() + "': " + detail::errno_text(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    throw Error("cannot read '" + path.string() + "': " + detail::errno_text(errno));
  const auto size = static_cast<std::size_t>(st.st_size);
  if (max_bytes == 0 || size == 0) return "";
  const std::size_t start = size > max_bytes ? size - max_bytes : 0;
  // One byte more before the window, to see whether it starts a line.
  const std::size_t from = start > 0 ? start - 1 : 0;
  std::string buf(size - from, '\0');
  std::size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n =
        ::pread(fd.get(), buf.data() + got, buf.size() - got, static_cast<off_t>(from + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("cannot read '" + path.string() + "': " + detail::errno_text(errno));
    if (n == 0) break;  // the file shrank meanwhile
    got += static_cast<std::size_t>(n);
  }
  buf.resize(got);
  std::string_view tail(buf);
  if (start > 0 && !tail.empty()) {
    const bool at_line_start = tail.front() == '\n';
    tail.remove_prefix(1);
    if (!at_line_start) {
      const std::size_t nl = tail.find('\n');
      if (nl != std::string_view::npos && nl + 1 < tail.size()) {
        tail.remove_prefix(nl + 1);
      } else {
        for (int k = 0;
             k < 3 && !tail.empty() && (static_cast<unsigned char>(tail.front()) & 0xC0) == 0x80;
             ++k)
          tail.remove_prefix(1);
      }
    }
  }
  return valid_utf8(tail);
}

}  // namespace xpscale::launcher
