// The state file of the ports added at run time (port_state.h).
#include "control/port_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "vusw/unique_fd.h"

namespace vusw {
namespace {

// 256 ports of a few hundred bytes each fit many times over; a bigger file is not ours.
constexpr std::size_t kMaxStateBytes = 1 << 20;

Result<RecordedPort> parse_entry(const nlohmann::json& entry, std::size_t index)
{
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() || !entry.contains("request") ||
        !entry["request"].is_object() || entry["request"].value("cmd", nlohmann::json()) != "add_port")
        return fail("state", fmt::format("ports[{}] is not {{\"name\":NAME,\"request\":{{\"cmd\":\"add_port\",...}}}}",
                                         index));
    return RecordedPort{entry["name"].get<std::string>(), entry["request"]};
}

Status write_all(int fd, std::string_view text)
{
    while (!text.empty()) {
        const ssize_t n = ::write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail("state", strerror(errno));
        text.remove_prefix(std::size_t(n));
    }
    return {};
}

// `text` as the file at `path`: a temporary file beside it, fsync, rename, fsync of the
// directory (the rename itself made durable).
Status replace_file(const std::string& path, const std::string& text)
{
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty())
        std::filesystem::create_directories(dir, ec);
    std::string temp = path + ".XXXXXX";
    UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));  // mode 0600
    if (!fd)
        return fail("state", fmt::format("cannot create {}: {}", temp, strerror(errno)));
    Status ok = write_all(fd.get(), text);
    if (ok && (::fchmod(fd.get(), 0600) != 0 || ::fsync(fd.get()) != 0))
        ok = fail("state", strerror(errno));
    if (ok && ::rename(temp.c_str(), path.c_str()) != 0)
        ok = fail("state", fmt::format("rename to {}: {}", path, strerror(errno)));
    if (!ok) {
        ::unlink(temp.c_str());
        return fail("state", fmt::format("cannot write {}: {}", path, ok.error().detail));
    }
    if (UniqueFd d(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); d)
        ::fsync(d.get());
    return {};
}

// The file's text; nullopt if there is none.
Result<std::optional<std::string>> read_state(const std::string& path)
{
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) && !ec)
        return std::optional<std::string>();
    std::ifstream in(path);
    if (!in)
        return fail("state", fmt::format("cannot read {}: {}", path, strerror(errno)));
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().size() > kMaxStateBytes)
        return fail("state", fmt::format("{} is longer than {} bytes", path, kMaxStateBytes));
    return std::optional(text.str());
}

}  // namespace

std::string serialise_port_state(const std::vector<RecordedPort>& ports)
{
    nlohmann::json list = nlohmann::json::array();
    for (const RecordedPort& p : ports)
        list.push_back({{"name", p.name}, {"request", p.request}});
    const nlohmann::json file = {{"version", kPortStateVersion}, {"ports", list}};
    return file.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Result<std::vector<RecordedPort>> parse_port_state(std::string_view text)
{
    const nlohmann::json file = nlohmann::json::parse(text, nullptr, false);
    if (file.is_discarded() || !file.is_object())
        return fail("state", "not a JSON object");
    if (!file.contains("version") || !file["version"].is_number_unsigned())
        return fail("state", "no \"version\"");
    if (const unsigned version = file["version"].get<unsigned>(); version != kPortStateVersion)
        return fail("state", fmt::format("format version {}, this vuswitchd reads version {}{}", version,
                                         kPortStateVersion, version > kPortStateVersion ? " (a newer vuswitchd wrote it)" : ""));
    if (!file.contains("ports") || !file["ports"].is_array())
        return fail("state", "no \"ports\" list");
    std::vector<RecordedPort> ports;
    for (std::size_t i = 0; i < file["ports"].size(); ++i) {
        auto entry = parse_entry(file["ports"][i], i);
        if (!entry)
            return std::unexpected(entry.error());
        ports.push_back(std::move(*entry));
    }
    return ports;
}

PortState::PortState(std::string path) : path_(std::move(path)) {}

Result<std::vector<RecordedPort>> PortState::take()
{
    ports_.clear();
    if (path_.empty())
        return std::vector<RecordedPort>();
    auto text = read_state(path_);
    if (text && !*text)
        return std::vector<RecordedPort>();
    auto ports = text ? parse_port_state(**text) : std::unexpected(text.error());
    if (ports)
        return ports;
    const std::string aside = path_ + ".bad";
    const std::string moved = ::rename(path_.c_str(), aside.c_str()) == 0
                                  ? fmt::format("moved to {}", aside)
                                  : fmt::format("could not be moved to {} ({}): remove it", aside, strerror(errno));
    return fail("state", fmt::format("state file {}: {}; it is {}. The ports it recorded are not restored: add them "
                                     "again (vuswitchctl add-port; the request of each is in the file)",
                                     path_, ports.error().detail, moved));
}

Status PortState::record(const std::string& name, const nlohmann::json& request)
{
    std::erase_if(ports_, [&](const RecordedPort& p) { return p.name == name; });
    ports_.push_back(RecordedPort{name, request});
    return held_ ? Status() : save();
}

Status PortState::forget(const std::string& name)
{
    if (std::erase_if(ports_, [&](const RecordedPort& p) { return p.name == name; }) == 0)
        return {};
    return held_ ? Status() : save();
}

bool PortState::recorded(const std::string& name) const
{
    return std::any_of(ports_.begin(), ports_.end(), [&](const RecordedPort& p) { return p.name == name; });
}

Status PortState::save() const
{
    if (path_.empty())
        return {};
    return replace_file(path_, serialise_port_state(ports_));
}

Status forget_recorded_port(const std::string& path, const std::string& name)
{
    auto text = read_state(path);
    if (!text)
        return std::unexpected(text.error());
    if (!*text)
        return {};
    auto ports = parse_port_state(**text);
    if (!ports)
        return fail("state", fmt::format("state file {}: {}", path, ports.error().detail));
    if (std::erase_if(*ports, [&](const RecordedPort& p) { return p.name == name; }) == 0)
        return {};
    return replace_file(path, serialise_port_state(*ports));
}

}  // namespace vusw
