#include "gateway/stream/resume.hpp"

#include <boost/asio/post.hpp>

#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/stream/session_registry.hpp"

namespace sluice {

std::string_view to_string(ResumeRefusal refusal) {
  switch (refusal) {
    case ResumeRefusal::kUnknownSession: return "unknown_session";
    case ResumeRefusal::kSessionExpired: return "expired";
    case ResumeRefusal::kBadToken: return "bad_token";
    case ResumeRefusal::kOffsetAhead: return "offset_ahead";
    case ResumeRefusal::kEvicted: return "evicted";
    case ResumeRefusal::kEventsExpired: return "expired";
    case ResumeRefusal::kUnavailable: return "store_unavailable";
  }
  return "unknown_session";
}

namespace {
ResumeCheck refuse(ResumeRefusal why, std::string message) {
  if (auto* m = metrics::active()) m->resumes.with({to_string(why)}).inc();
  ResumeCheck r;
  r.refusal = why;
  r.message = std::move(message);
  return r;
}
}  // namespace

ResumeCheck check_resume(const SessionRegistry& sessions, const std::string& id,
                         const std::string& principal, std::string_view token, uint64_t offset) {
  SessionRegistry::Lookup why{};
  auto session = sessions.find(id, principal, why);
  return check_resume(std::move(session), why, token, offset);
}

ResumeCheck check_resume(std::shared_ptr<Session> session, SessionRegistry::Lookup why, std::string_view token,
                         uint64_t offset) {
  if (!session) {
    if (why == SessionRegistry::Lookup::kUnavailable) {
      return refuse(ResumeRefusal::kUnavailable, "the session store cannot be reached; try again shortly");
    }
    if (why == SessionRegistry::Lookup::kExpired) {
      return refuse(ResumeRefusal::kSessionExpired,
                    "the session ended longer ago than resume.retention_ms");
    }
    return refuse(ResumeRefusal::kUnknownSession, "no such session");
  }
  if (!session->token_matches(token)) {
    return refuse(ResumeRefusal::kBadToken, "resume_token does not match the session");
  }
  switch (session->journal().check(offset)) {
    case JournalStatus::kOk: break;
    case JournalStatus::kAhead:
      return refuse(ResumeRefusal::kOffsetAhead,
                    "offset is beyond the last event (" + std::to_string(session->journal().last_offset()) + ")");
    case JournalStatus::kExpired:
      return refuse(ResumeRefusal::kEventsExpired, "the events after this offset passed resume.retention_ms");
    case JournalStatus::kEvicted:
      return refuse(ResumeRefusal::kEvicted,
                    "the events after this offset were evicted to stay within resume.memory_budget_bytes");
  }
  ResumeCheck r;
  r.session = std::move(session);
  return r;
}

bool check_resume_caught_up(std::shared_ptr<Session> session, SessionRegistry::Lookup why, std::string token,
                            uint64_t offset, const boost::asio::any_io_executor& executor,
                            std::function<void(ResumeCheck)> done) {
  if (!session || !session->journal().claims_turns() || session->journal().check(offset) != JournalStatus::kAhead) {
    done(check_resume(std::move(session), why, token, offset));
    return true;
  }
  Journal& journal = session->journal();
  journal.catch_up([session = std::move(session), why, token = std::move(token), offset, executor,
                    done = std::move(done)]() mutable {
    boost::asio::post(executor, [session = std::move(session), why, token = std::move(token), offset,
                                 done = std::move(done)]() mutable {
      done(check_resume(std::move(session), why, token, offset));
    });
  });
  return false;
}

void record_resumed(const Session& session, uint64_t offset) {
  if (auto* m = metrics::active()) {
    m->resumes.with({"resumed"}).inc();
    const uint64_t last = session.journal().last_offset();
    m->replayed_events.get().inc(static_cast<double>(last > offset ? last - offset : 0));
  }
}

}  // namespace sluice
