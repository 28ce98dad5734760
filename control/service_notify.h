// systemd service notifications (sd_notify(3)) for a Type=notify unit: READY=1 once the
// switch serves, WATCHDOG=1 from the control thread's loop while WatchdogSec= is set,
// STOPPING=1 at shutdown, STATUS= lines for `systemctl status`. Without NOTIFY_SOCKET
// (not started by systemd) every call does nothing.
#pragma once

#include <chrono>
#include <string_view>

namespace vusw {

class ServiceNotify {
public:
    // Reads WATCHDOG_USEC/WATCHDOG_PID (sd_watchdog_enabled) once.
    ServiceNotify();

    // The vhost-user and control sockets listen and the PMD cores run.
    void ready(std::string_view status);
    // Called from every control-loop tick: pings the watchdog at half its interval, so a
    // control thread stuck for a whole interval gets the service restarted.
    void tick();
    // SIGTERM/SIGINT arrived; the switch is tearing down.
    void stopping();

    // The watchdog interval systemd asked for; zero when it is off.
    std::chrono::microseconds watchdog() const { return watchdog_; }

private:
    std::chrono::microseconds watchdog_{0};
    std::chrono::steady_clock::time_point next_ping_{};
};

}  // namespace vusw
