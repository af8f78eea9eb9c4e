#include "gateway/stream/session_registry.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "gateway/common/random_id.hpp"

namespace sluice {

namespace net = boost::asio;

namespace {
constexpr size_t kMaxTombstones = 1'000'000;
// When expired sessions and journals add up to this much, free heap pages
// go back to the kernel (at most once per interval: a trim walks the heap).
constexpr size_t kTrimAfterBytes = size_t{16} << 20;
constexpr size_t kTrimAfterSessions = 1000;
constexpr auto kMinTrimInterval = std::chrono::seconds(2);
}

SessionRegistry::SessionRegistry(net::io_context& ioc, std::shared_ptr<JournalStore> store,
                                 Engine& engine, SessionSettings settings,
                                 std::chrono::milliseconds retention)
    : ioc_(ioc),
      store_(std::move(store)),
      engine_(engine),
      settings_(settings),
      retention_(retention),
      strand_(net::make_strand(ioc)),
      timer_(strand_) {}

std::shared_ptr<Session> SessionRegistry::create(const std::string& principal) {
  std::string id = make_random_id("s_");
  auto session = std::make_shared<Session>(id, principal, store_->create(id), engine_, settings_,
                                           net::make_strand(ioc_));
  session->listen_to_journal();
  std::lock_guard lock(mutex_);
  sessions_.emplace(std::move(id), session);
  return session;
}

std::shared_ptr<Session> SessionRegistry::find(const std::string& id, const std::string& principal,
                                               Lookup& why) const {
  std::lock_guard lock(mutex_);
  const auto it = sessions_.find(id);
  if (it != sessions_.end() && it->second->principal() == principal) {
    why = Lookup::kFound;
    return it->second;
  }
  const auto dead = it == sessions_.end() ? tombstones_.find(id) : tombstones_.end();
  why = dead != tombstones_.end() && dead->second == principal ? Lookup::kExpired : Lookup::kUnknown;
  return nullptr;
}

bool SessionRegistry::find_or_open(const std::string& id, const std::string& principal,
                                   const net::any_io_executor& executor, Found done) {
  Lookup why{};
  auto session = find(id, principal, why);
  if (session || why == Lookup::kExpired || !store_->shared()) {
    done(std::move(session), why);
    return true;
  }
  {
    std::lock_guard lock(mutex_);
    // Another principal's session that is here is unknown, and stays so.
    if (sessions_.count(id)) {
      done(nullptr, Lookup::kUnknown);
      return true;
    }
    // Opened once, however many ask at the same moment (two copies of one
    // journal would each follow the same channel).
    auto& waiters = opening_[id];
    waiters.push_back({principal, executor, std::move(done)});
    if (waiters.size() > 1) return false;
  }
  store_->open(id, [self = shared_from_this(), id](JournalStore::Opened o) mutable {
    std::shared_ptr<Session> opened;
    const bool found = o.outcome == JournalStore::Opened::Outcome::kFound;
    const std::string owner = o.record.principal;
    if (found) {
      opened = std::make_shared<Session>(id, std::move(o.record), std::move(o.journal), self->engine_,
                                         self->settings_, net::make_strand(self->ioc_));
      opened->listen_to_journal();  // before anyone can attach
    }
    std::vector<OpenWaiter> waiters;
    {
      std::lock_guard lock(self->mutex_);
      if (opened) opened = self->sessions_.emplace(id, opened).first->second;
      waiters = std::move(self->opening_[id]);
      self->opening_.erase(id);
    }
    for (auto& w : waiters) {
      Lookup why = Lookup::kUnknown;
      std::shared_ptr<Session> session;
      if (o.outcome == JournalStore::Opened::Outcome::kUnavailable) {
        why = Lookup::kUnavailable;
      } else if (opened && owner == w.principal) {
        session = opened;
        why = Lookup::kFound;
      }
      net::post(w.executor, [done = std::move(w.done), session = std::move(session), why]() mutable {
        done(std::move(session), why);
      });
    }
  });
  return false;
}

void SessionRegistry::discard(const std::string& id) {
  std::shared_ptr<Session> gone;  // destroyed outside the lock
  std::lock_guard lock(mutex_);
  const auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  gone = std::move(it->second);
  sessions_.erase(it);
}

void SessionRegistry::start() {
  net::post(strand_, [self = shared_from_this()] { self->schedule(); });
  if (store_->shared()) {
    store_->set_on_orphaned_turn([weak = weak_from_this()](const std::string& id, const std::string& principal) {
      if (auto self = weak.lock()) self->adopt_orphaned_turn(id, principal);
    });
  }
}

void SessionRegistry::adopt_orphaned_turn(const std::string& id, const std::string& principal) {
  if (!adopting_.load()) return;  // stopping or draining: another instance takes it
  find_or_open(id, principal, strand_, [id](std::shared_ptr<Session> session, Lookup) {
    if (!session) return;  // the store could not be read: the next sweep tries again
    spdlog::info("session {}: its turn's instance was lost and no instance watching it took it over; this "
                 "one does",
                 id);
    // The claim decides: when another instance took it over first, nothing happens here.
    session->take_over();
  });
}

void SessionRegistry::stop() {
  adopting_ = false;
  net::post(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->timer_.cancel();
  });
}

void SessionRegistry::schedule() {
  if (stopped_) return;
  // Sweep often enough that nothing outlives its retention by much.
  const auto every = std::clamp<std::chrono::milliseconds>(retention_ / 4, std::chrono::milliseconds(50),
                                                           std::chrono::milliseconds(1000));
  timer_.expires_after(every);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->stopped_) return;
    self->sweep(Clock::now());
    self->schedule();
  });
}

void SessionRegistry::sweep(Clock::time_point now) {
  store_->expire(now);
  std::vector<std::shared_ptr<Session>> forgotten;  // destroyed outside the lock
  size_t held = 0;
  {
    std::lock_guard lock(mutex_);
    forget_idle(now, forgotten);
    held = sessions_.size();
  }
  forgotten_since_trim_ += forgotten.size();
  forgotten.clear();
  return_memory(now, held);
}

void SessionRegistry::return_memory(Clock::time_point now, size_t held) {
  // glibc keeps freed heap pages for reuse: after a burst the resident size
  // would stay at its peak for good. Once the load has gone down (at most
  // half of the peak still held) and expiry has let go of a lot, the free
  // pages go back to the kernel. Under a steady load nothing is trimmed:
  // the pages are about to be reused.
  const size_t used = store_->bytes_used();
  journal_peak_since_trim_ = std::max(journal_peak_since_trim_, used);
  sessions_peak_since_trim_ = std::max(sessions_peak_since_trim_, held + forgotten_since_trim_);
  const bool bytes_down = journal_peak_since_trim_ - used >= kTrimAfterBytes &&
                          used <= journal_peak_since_trim_ / 2;
  const bool sessions_down = forgotten_since_trim_ >= kTrimAfterSessions && held <= sessions_peak_since_trim_ / 2;
  if (!(bytes_down || sessions_down) || now - last_trim_ < kMinTrimInterval) return;
  last_trim_ = now;
  journal_peak_since_trim_ = used;
  sessions_peak_since_trim_ = held;
  forgotten_since_trim_ = 0;
#ifdef __GLIBC__
  // A trim walks the heap (milliseconds for hundreds of MiB): on its own
  // thread, never an I/O thread.
  net::post(trim_thread_, [] {
    const auto start = Clock::now();
    malloc_trim(0);
    spdlog::debug("returned free heap memory to the system ({} us)",
                  std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
  });
#endif
}

void SessionRegistry::forget_idle(Clock::time_point now, std::vector<std::shared_ptr<Session>>& forgotten) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second->idle_before(now - retention_)) {
      tombstones_.emplace(it->first, it->second->principal());
      tombstone_order_.emplace_back(it->first, now);
      forgotten.push_back(std::move(it->second));
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  while (!tombstone_order_.empty() &&
         (tombstone_order_.size() > kMaxTombstones ||
          tombstone_order_.front().second + retention_ * 6 <= now)) {
    tombstones_.erase(tombstone_order_.front().first);
    tombstone_order_.pop_front();
  }
}

void SessionRegistry::cancel_all(const TurnError& why) {
  adopting_ = false;
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, s] : sessions_) all.push_back(s);
  }
  for (auto& s : all) s->cancel(why);
}

size_t SessionRegistry::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

}  // namespace sluice
