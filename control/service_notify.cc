// systemd notifications through libsystemd's sd_notify.
#include "control/service_notify.h"

#include <systemd/sd-daemon.h>

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "vusw/log.h"

namespace vusw {
namespace {

void notify(const std::string& state)
{
    // < 0: NOTIFY_SOCKET is set but unusable; 0: not run by systemd (nothing to do).
    if (const int r = sd_notify(0, state.c_str()); r < 0)
        log(LogLevel::warn, "sd_notify({}) failed: {}; check NOTIFY_SOCKET", state.substr(0, state.find('\n')),
            std::strerror(-r));
}

}  // namespace

ServiceNotify::ServiceNotify()
{
    uint64_t usec = 0;
    const int r = sd_watchdog_enabled(0, &usec);
    if (r < 0)
        log(LogLevel::warn, "WATCHDOG_USEC/WATCHDOG_PID are malformed ({}); the watchdog is not pinged", std::strerror(-r));
    else if (r > 0)
        watchdog_ = std::chrono::microseconds(usec);
}

void ServiceNotify::ready(std::string_view status)
{
    notify(fmt::format("READY=1\nSTATUS={}", status));
    if (watchdog_.count() > 0) {
        log(LogLevel::info, "systemd watchdog: pinging every {} ms", watchdog_.count() / 2000);
        notify("WATCHDOG=1");
        next_ping_ = std::chrono::steady_clock::now() + watchdog_ / 2;
    }
}

void ServiceNotify::tick()
{
    if (watchdog_.count() == 0)
        return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_ping_)
        return;
    notify("WATCHDOG=1");
    next_ping_ = now + watchdog_ / 2;
}

void ServiceNotify::stopping()
{
    notify("STOPPING=1\nSTATUS=shutting down");
}

}  // namespace vusw
