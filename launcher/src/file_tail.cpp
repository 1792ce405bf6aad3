// The tail of a trial's output file, as valid UTF-8 (process.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

#include "process_tree.h"
#include "xpscale/core/error.h"
#include "xpscale/launcher/process.h"

namespace xpscale::launcher {
namespace {

// Replaces every byte that does not start a valid UTF-8 sequence (overlong
// forms, surrogates and code points past U+10FFFF included) by U+FFFD.
std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    std::size_t len = 0;
    char32_t cp = 0, min = 0;
    if ((c >> 5) == 0x6) {
      len = 2;
      cp = c & 0x1F;
      min = 0x80;
    } else if ((c >> 4) == 0xE) {
      len = 3;
      cp = c & 0x0F;
      min = 0x800;
    } else if ((c >> 3) == 0x1E) {
      len = 4;
      cp = c & 0x07;
      min = 0x10000;
    }
    bool ok = len != 0 && i + len <= s.size();
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace

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
