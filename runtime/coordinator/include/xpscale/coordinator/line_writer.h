#pragma once
// LineWriter: text written to a file descriptor by a thread of its own, so
// that the coordinator never waits on a slow terminal, a full pipe or a
// stalled file system while it dispatches trials (progress.h).
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace xpscale::detail {

class LineWriter {
 public:
  // Bytes that may wait to be written before write() drops or waits.
  static constexpr std::size_t kMaxPending = std::size_t{1} << 20;

  // Writes to fd, which stays open (stdout, stderr).
  explicit LineWriter(int fd);
  // Appends to the file at `path`, created if missing. Throws UserError
  // naming `flag` and the file when it cannot be opened.
  LineWriter(const std::string& path, const std::string& flag);
  // Writes what is queued, then ends the thread (and closes its own file).
  ~LineWriter();
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;

  // Queues `text` (whole lines). While more than kMaxPending bytes wait,
  // droppable text is dropped and its lines counted; other text waits for
  // room. After a failed write (a pipe whose reader left) text is
  // discarded: the sweep goes on without it.
  void write(std::string_view text, bool droppable = false);
  // Lines of droppable text dropped since the last call.
  std::uint64_t take_dropped();
  // Waits until everything queued so far is written, at most timeout_s
  // seconds (may be infinite); whether it was.
  bool drain(double timeout_s);

 private:
  void loop();

  int fd_ = -1;
  bool owned_ = false;
  std::mutex mutex_;
  std::condition_variable wake_;     // text queued, or closing
  std::condition_variable written_;  // a batch written: room, or drained
  std::string pending_;
  bool writing_ = false, closing_ = false, broken_ = false;
  std::uint64_t dropped_ = 0;
  std::thread thread_;
};

}  // namespace xpscale::detail
