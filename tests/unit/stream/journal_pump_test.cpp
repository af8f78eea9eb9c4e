#include "gateway/stream/journal_pump.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <map>

#include "gateway/stream/memory_journal_store.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;

// Sessions here only hold journals: nothing starts a turn.
class NoEngine : public Engine {
 public:
  std::unique_ptr<TurnHandle> start(TurnRequest, std::shared_ptr<TurnSink>) override { return nullptr; }
  std::string_view name() const override { return "none"; }
  bool ready() const override { return true; }
  void shutdown() override {}
};

StreamEvent event(StreamEventType type, std::string text = {}) {
  StreamEvent e;
  e.type = type;
  e.text = std::move(text);
  return e;
}

struct Emitted {
  std::string session;
  uint64_t offset;
  std::string text;
  bool merged;
};

class JournalPumpTest : public ::testing::Test {
 protected:
  std::shared_ptr<Session> session(const std::string& id) {
    return std::make_shared<Session>(id, "p", store_->create(id), engine_, SessionSettings{},
                                     ioc_.get_executor());
  }
  // One pump with `room`; every handed event goes to `out` and counts
  // `cost` bytes.
  JournalPump::Result pump(JournalPump& p, size_t room, bool coalesce = false, size_t cost = 10) {
    return p.pump(
        room, coalesce,
        [&](const JournalPump::Cursor& c, const JournalEntryPtr& e) {
          out.push_back({c.session->id(), e->offset(), e->event().text, false});
          return JournalPump::Emitted{cost, e->event().type == StreamEventType::kDone && stop_at_done};
        },
        [&](const JournalPump::Cursor& c, StreamEvent&& m) {
          out.push_back({c.session->id(), m.offset, m.text, true});
          return JournalPump::Emitted{cost};
        });
  }

  boost::asio::io_context ioc_;
  NoEngine engine_;
  std::shared_ptr<MemoryJournalStore> store_ = std::make_shared<MemoryJournalStore>(1 << 20, 60s);
  std::vector<Emitted> out;
  bool stop_at_done = false;
};

TEST_F(JournalPumpTest, FollowReadsWhatIsThereAndAMarkReadsOnlyItsSession) {
  auto a = session("a");
  auto b = session("b");
  a->journal().append(event(StreamEventType::kDelta, "已有"));
  JournalPump p;
  p.follow(a, 0);
  p.follow(b, 0);
  EXPECT_EQ(pump(p, 1 << 20).outcome, JournalPump::Outcome::kCaughtUp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].session, "a");
  EXPECT_EQ(out[0].text, "已有");

  // News in both journals, but only b says so: only b is read.
  a->journal().append(event(StreamEventType::kDelta, "a2"));
  b->journal().append(event(StreamEventType::kDelta, "b1 🚀"));
  p.mark(*b);
  p.mark(*b);  // listed once
  out.clear();
  pump(p, 1 << 20);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].session, "b");
  EXPECT_EQ(out[0].offset, 1u);
  EXPECT_FALSE(p.caught_up());  // a's cursor is behind its journal
  p.mark(*a);
  out.clear();
  pump(p, 1 << 20);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].text, "a2");
  EXPECT_TRUE(p.caught_up());
  // Nothing marked, nothing read.
  out.clear();
  EXPECT_EQ(pump(p, 1 << 20).outcome, JournalPump::Outcome::kCaughtUp);
  EXPECT_TRUE(out.empty());
}

// A face that must name the session to its client first follows it held:
// nothing of it goes out, however it is woken, until release(); then all of
// it, from the cursor, while the other sessions flow meanwhile.
TEST_F(JournalPumpTest, AHeldCursorHandsNothingUntilReleased) {
  auto a = session("a");
  auto b = session("b");
  JournalPump p;
  auto& held = p.follow(a, 0, true);
  p.follow(b, 0);
  a->journal().append(event(StreamEventType::kDelta, "先别说 🤫"));
  b->journal().append(event(StreamEventType::kDelta, "b1"));
  p.mark(*a);
  p.mark(*b);
  pump(p, 1 << 20);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].session, "b");
  EXPECT_FALSE(p.caught_up());
  a->journal().append(event(StreamEventType::kDelta, "现在"));
  p.mark(*a);
  out.clear();
  pump(p, 1 << 20);
  EXPECT_TRUE(out.empty());

  p.release(held);  // no mark needed: what came meanwhile is read
  out.clear();
  pump(p, 1 << 20);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].offset, 1u);
  EXPECT_EQ(out[0].text, "先别说 🤫");
  EXPECT_EQ(out[1].text, "现在");
  EXPECT_TRUE(p.caught_up());
}

TEST_F(JournalPumpTest, RoomStopsThePumpAndTheNextGoesOnWithNoGapOrRepeat) {
  auto a = session("a");
  auto b = session("b");
  for (int i = 0; i < 20; ++i) {
    a->journal().append(event(StreamEventType::kDelta, "a" + std::to_string(i)));
    b->journal().append(event(StreamEventType::kDelta, "b" + std::to_string(i)));
  }
  JournalPump p;
  p.follow(a, 0);
  p.follow(b, 0);
  std::map<std::string, std::vector<uint64_t>> seen;
  int pumps = 0;
  for (; pumps < 100 && !p.caught_up(); ++pumps) {
    out.clear();
    const auto r = pump(p, 35);  // room for 4 events of 10 bytes
    EXPECT_LE(out.size(), 4u);
    EXPECT_EQ(r.outcome, p.caught_up() ? JournalPump::Outcome::kCaughtUp : JournalPump::Outcome::kFull);
    EXPECT_EQ(p.behind(), r.outcome == JournalPump::Outcome::kFull);
    for (const auto& e : out) seen[e.session].push_back(e.offset);
  }
  EXPECT_GE(pumps, 10);
  for (const auto& id : {"a", "b"}) {
    ASSERT_EQ(seen[id].size(), 20u) << id;
    for (uint64_t i = 0; i < 20; ++i) EXPECT_EQ(seen[id][i], i + 1) << id;
  }
  // No room at all: nothing is handed, and the face is behind.
  a->journal().append(event(StreamEventType::kDelta, "more"));
  p.mark(*a);
  out.clear();
  EXPECT_EQ(pump(p, 0).outcome, JournalPump::Outcome::kFull);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(p.behind());
  EXPECT_EQ(pump(p, 100).outcome, JournalPump::Outcome::kCaughtUp);  // unmarked, still read
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].text, "more");
}

TEST_F(JournalPumpTest, CoalescingMergesConsecutiveDeltasAtTheLastOffset) {
  auto a = session("a");
  for (const char* t : {"你", "好", "！"}) a->journal().append(event(StreamEventType::kDelta, t));
  a->journal().append(event(StreamEventType::kModeration, "redacted"));
  a->journal().append(event(StreamEventType::kDelta, "👋"));
  a->journal().append(event(StreamEventType::kDone));
  JournalPump p;
  p.follow(a, 0);
  pump(p, 1 << 20, true);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_TRUE(out[0].merged);
  EXPECT_EQ(out[0].text, "你好！");
  EXPECT_EQ(out[0].offset, 3u);
  EXPECT_EQ(out[1].offset, 4u);  // not merged across another event
  EXPECT_FALSE(out[2].merged);   // a lone delta is the entry itself
  EXPECT_EQ(out[2].offset, 5u);
  EXPECT_EQ(out[3].offset, 6u);
  EXPECT_EQ(p.find("a")->offset, 6u);
}

TEST_F(JournalPumpTest, TheFacesLastEventEndsThePump) {
  auto a = session("a");
  a->journal().append(event(StreamEventType::kDelta, "x"));
  a->journal().append(event(StreamEventType::kDone));
  a->journal().append(event(StreamEventType::kDelta, "next turn"));
  stop_at_done = true;
  JournalPump p;
  p.follow(a, 0);
  EXPECT_EQ(pump(p, 1 << 20).outcome, JournalPump::Outcome::kLast);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(p.find("a")->offset, 2u);
}

TEST_F(JournalPumpTest, AReaderWhoseEventsAreGoneIsToldWhy) {
  auto small = std::make_shared<MemoryJournalStore>(4096, 60s);
  auto a = std::make_shared<Session>("a", "p", small->create("a"), engine_, SessionSettings{},
                                     ioc_.get_executor());
  auto b = std::make_shared<Session>("b", "p", small->create("b"), engine_, SessionSettings{},
                                     ioc_.get_executor());
  for (int i = 0; i < 10; ++i) a->journal().append(event(StreamEventType::kDelta, std::string(100, 'a')));
  a->journal().end_turn();
  JournalPump p;
  p.follow(a, 2);
  // b's turn needs the memory: a's finished turn is evicted.
  for (int i = 0; i < 40; ++i) b->journal().append(event(StreamEventType::kDelta, std::string(100, 'b')));
  const auto r = pump(p, 1 << 20);
  EXPECT_EQ(r.outcome, JournalPump::Outcome::kLost);
  ASSERT_NE(r.lost, nullptr);
  EXPECT_EQ(r.lost->session->id(), "a");
  EXPECT_EQ(r.status, JournalStatus::kEvicted);
  EXPECT_TRUE(out.empty());
}

TEST_F(JournalPumpTest, ALetGoSessionIsNotReadEvenWhenItMarkedItself) {
  auto a = session("a");
  JournalPump p;
  p.follow(a, 0);
  a->journal().append(event(StreamEventType::kDelta, "x"));
  p.mark(*a);
  p.unfollow("a");
  auto again = session("a");  // another session under the same id
  p.follow(again, 0);
  pump(p, 1 << 20);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace sluice
