// A mutex whose locking rules the compiler checks.
//
// The control side shares a few structures with threads other than the control thread
// (the metrics exporter's HTTP threads read port statistics and the live-port list).
// Those structures declare which mutex guards them (VUSW_GUARDED_BY); clang's
// -Wthread-safety, on in every clang build (tests/tsan/run.sh), rejects an access without
// the lock. Under GCC the annotations expand to nothing. The data path takes no lock:
// what PMD cores share with the control thread goes through RCU and command queues.
#pragma once

#include <mutex>

#if defined(__clang__)
#define VUSW_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define VUSW_THREAD_ANNOTATION(x)
#endif

#define VUSW_CAPABILITY(name) VUSW_THREAD_ANNOTATION(capability(name))
#define VUSW_SCOPED_CAPABILITY VUSW_THREAD_ANNOTATION(scoped_lockable)
#define VUSW_GUARDED_BY(m) VUSW_THREAD_ANNOTATION(guarded_by(m))
#define VUSW_REQUIRES(...) VUSW_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define VUSW_ACQUIRE(...) VUSW_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define VUSW_RELEASE(...) VUSW_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define VUSW_EXCLUDES(...) VUSW_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// For a reader the analysis cannot follow (e.g. the one writer's own lock-free reads).
#define VUSW_NO_THREAD_SAFETY_ANALYSIS VUSW_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace vusw {

// std::mutex with the annotations libstdc++ does not carry.
class VUSW_CAPABILITY("mutex") Mutex {
public:
    void lock() VUSW_ACQUIRE() { m_.lock(); }
    void unlock() VUSW_RELEASE() { m_.unlock(); }

private:
    std::mutex m_;
};

// Holds a Mutex for its scope (std::lock_guard, annotated).
class VUSW_SCOPED_CAPABILITY MutexLock {
public:
    explicit MutexLock(Mutex& m) VUSW_ACQUIRE(m) : m_(m) { m_.lock(); }
    ~MutexLock() VUSW_RELEASE() { m_.unlock(); }
    MutexLock(const MutexLock&) = delete;
    MutexLock& operator=(const MutexLock&) = delete;

private:
    Mutex& m_;
};

}  // namespace vusw
