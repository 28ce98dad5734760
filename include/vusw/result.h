// Results and errors on the control path.
//
// Control code returns values, never throws on peer input: an Error names a short,
// stable reason (used as a Prometheus label and in logs) plus a human detail.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace vusw {

struct Error {
    const char* reason;   // stable label, e.g. "bad_fd_count"; a string literal
    std::string detail;   // what exactly was wrong, for the log
};

template <class T>
using Result = std::expected<T, Error>;

using Status = std::expected<void, Error>;

inline std::unexpected<Error> fail(const char* reason, std::string detail)
{
    return std::unexpected<Error>(Error{reason, std::move(detail)});
}

}  // namespace vusw
