// errors.cc: error messages without C++ source locations.
#include "internal.h"

namespace cg {

namespace {

bool starts_with(const std::string &s, size_t at, const char *prefix) {
  return s.compare(at, std::strlen(prefix), prefix) == 0;
}

// A stack frame line of a c10 backtrace: "frame #3: ..." (maybe indented).
bool is_frame(const std::string &line) {
  size_t i = line.find_first_not_of(" \t");
  return i != std::string::npos && starts_with(line, i, "frame #");
}

// clean_line rewrites one line of a message.
std::string clean_line(std::string line) {
  // "[enforce fail at alloc_cpu.cpp:75] err == 0. msg" -> "msg": the
  // bracket holds the location, the text up to the first ". " the failed
  // condition.
  for (size_t at; (at = line.find("[enforce fail at ")) != std::string::npos;) {
    size_t close = line.find("] ", at);
    if (close == std::string::npos) break;
    size_t end = line.find(". ", close + 2);
    end = end == std::string::npos ? close + 2 : end + 2;
    line.erase(at, end - at);
  }
  // "[./gloo/transport/tcp/pair.cc:589] Read error ..." (Gloo's
  // enforce) -> "Read error ...": a bracketed source file and line.
  if (!line.empty() && line[0] == '[') {
    size_t close = line.find("] ");
    size_t colon = line.rfind(':', close);
    std::string loc = close == std::string::npos ? "" : line.substr(0, close);
    bool file = colon != std::string::npos && colon > 1 &&
                (loc.find(".cc:") != std::string::npos || loc.find(".cpp:") != std::string::npos ||
                 loc.find(".h:") != std::string::npos);
    if (file && close > colon + 1) {
      bool digits = true;
      for (size_t i = colon + 1; i < close; i++) digits = digits && line[i] >= '0' && line[i] <= '9';
      if (digits) line.erase(0, close + 2);
    }
  }
  // 'cond INTERNAL ASSERT FAILED at "/path/file.cpp":123, please report'
  // -> 'cond INTERNAL ASSERT FAILED, please report'; the same for
  // "CHECK FAILED at".
  for (const char *tag : {"ASSERT FAILED at \"", "CHECK FAILED at \""}) {
    size_t at = line.find(tag);
    if (at == std::string::npos) continue;
    size_t from = at + std::strlen(tag) - 5;  // the " at \"" part
    size_t q = line.find('"', at + std::strlen(tag));
    if (q == std::string::npos) continue;
    size_t end = q + 1;
    if (end < line.size() && line[end] == ':') {
      end++;
      while (end < line.size() && line[end] >= '0' && line[end] <= '9') end++;
    }
    line.erase(from, end - from);
  }
  return line;
}

}  // namespace

std::string clean(const char *msg) {
  std::string in(msg == nullptr ? "" : msg), out;
  size_t pos = 0;
  bool in_trace = false;
  while (pos <= in.size()) {
    size_t nl = in.find('\n', pos);
    if (nl == std::string::npos) nl = in.size();
    std::string line = in.substr(pos, nl - pos);
    pos = nl + 1;
    size_t lead = line.find_first_not_of(" \t");
    if (lead != std::string::npos &&
        starts_with(line, lead, "Exception raised from ")) {
      in_trace = true;  // drop it and the frames after it
      continue;
    }
    if (in_trace && (is_frame(line) || lead == std::string::npos)) continue;
    in_trace = false;
    if (is_frame(line)) continue;
    if (!out.empty()) out += '\n';
    out += clean_line(std::move(line));
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out.empty() ? std::string(msg == nullptr ? "" : msg) : out;
}

cg_err err(const char *msg) noexcept {
  try {
    return dup(clean(msg).c_str());
  } catch (...) {
    return dup(msg == nullptr ? "unknown error" : msg);
  }
}

}  // namespace cg
