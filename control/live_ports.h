// The live ports: the control thread's list, which the metrics exporter's HTTP threads
// also read while ports come and go.
#pragma once

#include <algorithm>
#include <vector>

#include "vusw/mutex.h"
#include "vusw/port.h"

namespace vusw {

class LivePorts {
public:
    // Control thread: it alone changes the list, so its own reads need no lock (the
    // scheduler and the control socket hold this reference).
    const std::vector<Port*>& list() const VUSW_NO_THREAD_SAFETY_ANALYSIS { return ports_; }

    // Control thread: a reader on another thread sees the list before or after.
    void add(Port* port) VUSW_EXCLUDES(mutex_)
    {
        MutexLock lock(mutex_);
        ports_.push_back(port);
    }
    void remove(Port* port) VUSW_EXCLUDES(mutex_)
    {
        MutexLock lock(mutex_);
        std::erase(ports_, port);
    }

    // Any thread: `read(list)` while no port can leave it (nor be freed).
    template <class F>
    auto read(F&& read) const VUSW_EXCLUDES(mutex_)
    {
        MutexLock lock(mutex_);
        return read(ports_);
    }

private:
    mutable Mutex mutex_;
    std::vector<Port*> ports_ VUSW_GUARDED_BY(mutex_);
};

}  // namespace vusw
