// Resume validation, shared by every face: a client names a session, shows
// its resume token and the last offset it saw; the gateway either lets it
// read on from there or says why not, with one of protocol v1's
// resume_failed reasons (docs/protocol.md; the HTTP face maps each to a
// status, docs/http-api.md).
//
// Threads: callable from any thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/stream/session.hpp"
#include "gateway/stream/session_registry.hpp"

namespace sluice {

enum class ResumeRefusal {
  kUnknownSession,  // no such session, or another principal's
  kSessionExpired,  // it ended longer ago than resume.retention_ms
  kBadToken,        // the token is not the session's
  kOffsetAhead,     // the offset is beyond the last event
  kEvicted,         // the events after it were dropped for resume.memory_budget_bytes
  kEventsExpired,   // the events after it passed resume.retention_ms
  kUnavailable,     // the shared session store cannot be reached (not a resume_failed reason)
};

// The protocol's word: unknown_session, expired, bad_token, offset_ahead or
// evicted (both kinds of expiry are "expired").
std::string_view to_string(ResumeRefusal refusal);

struct ResumeCheck {
  std::shared_ptr<Session> session;      // set when the resume may go ahead
  std::optional<ResumeRefusal> refusal;  // set otherwise
  std::string message;                   // for the client, with the refusal
  explicit operator bool() const { return !refusal; }
};

// Whether `principal` may read session `id` after `offset` with `token`. A
// refusal is counted (sluice_resumes_total by reason); a resume that goes
// ahead is counted by record_resumed, once the face has admitted it.
ResumeCheck check_resume(const SessionRegistry& sessions, const std::string& id,
                         const std::string& principal, std::string_view token, uint64_t offset);
// The same check on a session already looked up (SessionRegistry::find_or_open).
ResumeCheck check_resume(std::shared_ptr<Session> session, SessionRegistry::Lookup why, std::string_view token,
                         uint64_t offset);
// The same, for a session with a shared store whose copy here may lag
// behind the offset a client saw elsewhere: it catches up with the store
// first. Returns true when `done` ran before returning; otherwise `done` is
// posted to `executor`.
bool check_resume_caught_up(std::shared_ptr<Session> session, SessionRegistry::Lookup why, std::string token,
                            uint64_t offset, const boost::asio::any_io_executor& executor,
                            std::function<void(ResumeCheck)> done);
void record_resumed(const Session& session, uint64_t offset);

}  // namespace sluice
