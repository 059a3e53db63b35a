// A persistent pool of worker threads for the kernel. Started lazily (a worker at a time,
// as calls ask for them), asleep on a condition variable between calls, joined at
// interpreter exit.
//
// Fork: a child process inherits the pool's memory but none of its threads (and maybe a
// locked mutex). pthread_atfork's child handler drops the inherited pool without touching
// it (deliberately leaked: its lock state is unknown), so the child's first search starts
// a fresh one.
#include "threads.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace cliprt {
namespace {

// One parallel_parts call. Lives on the caller's stack; the caller leaves only once no
// worker holds it (active == 0) and it is out of the queue.
struct Job {
  Job(const std::function<void(int)>* p, int n, int s) : part(p), parts(n), seats(s) {}

  const std::function<void(int)>* part;
  int parts;
  int seats;                    // workers that may still join (guarded by Pool::m)
  int active = 0;               // workers inside (guarded by Pool::m)
  std::atomic<int> next{0};     // the next unclaimed part
  std::condition_variable left;  // a worker left (with Pool::m)

  void work() {
    for (int t = next.fetch_add(1); t < parts; t = next.fetch_add(1)) (*part)(t);
  }
};

class Pool {
 public:
  void run(int parts, int threads, const std::function<void(int)>& part) {
    const int helpers = std::min({threads, parts, usable_cpus()}) - 1;
    Job job{&part, parts, helpers};
    bool queued = false;
    {
      std::unique_lock<std::mutex> lock(m_);
      if (!stopping_ && helpers > 0) {
        grow(helpers, lock);
        queue_.push_back(&job);
        queued = true;
      }
    }
    if (queued)
      for (int i = 0; i < helpers; ++i) wake_.notify_one();
    job.work();
    if (!queued) return;
    std::unique_lock<std::mutex> lock(m_);
    // Every part is claimed: no worker may join now; wait for those inside.
    const auto it = std::find(queue_.begin(), queue_.end(), &job);
    if (it != queue_.end()) queue_.erase(it);
    job.left.wait(lock, [&] { return job.active == 0; });
  }

  void shutdown() {
    std::vector<std::thread> joining;
    {
      std::lock_guard<std::mutex> lock(m_);
      stopping_ = true;
      joining.swap(workers_);
    }
    wake_.notify_all();
    for (auto& t : joining) t.join();
  }

  int size() {
    std::lock_guard<std::mutex> lock(m_);
    return static_cast<int>(workers_.size());
  }

 private:
  // Starts workers until there are `want` (at most usable_cpus() - 1). A thread that
  // cannot start (out of resources) leaves the pool smaller; the caller still finishes.
  void grow(int want, std::unique_lock<std::mutex>&) {
    want = std::min(want, usable_cpus() - 1);
    while (static_cast<int>(workers_.size()) < want) {
      try {
        workers_.emplace_back([this] { loop(); });
      } catch (...) {
        break;
      }
    }
  }

  void loop() {
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left to help with
      Job* job = queue_.front();
      ++job->active;
      if (--job->seats == 0) queue_.pop_front();
      lock.unlock();
      job->work();
      lock.lock();
      if (--job->active == 0) job->left.notify_all();
    }
  }

  std::mutex m_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
};

std::atomic<Pool*> g_pool{nullptr};

#if defined(__unix__) || defined(__APPLE__)
void forget_pool_in_child() { g_pool.store(nullptr); }
#endif

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return *p;
#if defined(__unix__) || defined(__APPLE__)
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, forget_pool_in_child);
    return true;
  }();
  (void)registered;
#endif
  // Never deleted: a pool outliving static destruction is harmless, and after
  // shutdown_pool it holds no thread.
  auto* fresh = new Pool();
  if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;
  return *p;
}

}  // namespace

int usable_cpus() {
  static const int cpus = [] {
#if defined(__linux__)
    // A container or taskset may allow fewer CPUs than the machine has.
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return cpus;
}

void parallel_parts(int parts, int threads, const std::function<void(int)>& part) {
  if (parts <= 0) return;
  if (parts == 1 || threads <= 1 || usable_cpus() == 1) {
    for (int t = 0; t < parts; ++t) part(t);
    return;
  }
  pool().run(parts, threads, part);
}

void shutdown_pool() {
  if (Pool* p = g_pool.load()) p->shutdown();
}

int pool_workers() {
  Pool* p = g_pool.load();
  return p ? p->size() : 0;
}

}  // namespace cliprt
