#include "gateway/stream/memory_journal_store.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace sluice {
namespace {

using namespace std::chrono_literals;

StreamEvent delta(std::string text) {
  StreamEvent e;
  e.type = StreamEventType::kDelta;
  e.text = std::move(text);
  return e;
}

TEST(MemoryJournal, OffsetsAreGapFreeAndReadsStartAfterTheCursor) {
  auto store = std::make_shared<MemoryJournalStore>(1 << 20, 60s);
  auto j = store->create("s");
  EXPECT_EQ(j->last_offset(), 0u);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(j->append(delta("t" + std::to_string(i))), uint64_t(i));
  auto r = j->read(2, 1 << 20);
  ASSERT_EQ(r.status, JournalStatus::kOk);
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[0]->offset(), 3u);
  EXPECT_EQ(r.events[0]->event().text, "t3");
  EXPECT_TRUE(j->read(5, 100).events.empty());
  EXPECT_EQ(j->read(6, 100).status, JournalStatus::kAhead);
  // A small byte limit still returns at least one event.
  EXPECT_EQ(j->read(0, 1).events.size(), 1u);
}

TEST(MemoryJournal, BudgetDropsOldestFinishedTurnsButNeverARunningOne) {
  auto store = std::make_shared<MemoryJournalStore>(4096, 60s);
  auto a = store->create("a");
  auto b = store->create("b");
  for (int i = 0; i < 10; ++i) a->append(delta(std::string(100, 'a')));
  a->end_turn();
  // b's running turn grows past the budget: a's finished turn goes, b's stays.
  for (int i = 0; i < 40; ++i) b->append(delta(std::string(100, 'b')));
  EXPECT_EQ(a->check(0), JournalStatus::kEvicted);
  EXPECT_EQ(a->check(10), JournalStatus::kOk);  // nothing after 10 was lost
  EXPECT_EQ(b->check(0), JournalStatus::kOk);
  EXPECT_EQ(b->read(0, 1 << 20).events.size(), 40u);
  // New events on a still get the next offsets.
  EXPECT_EQ(a->append(delta("again")), 11u);
}

TEST(MemoryJournal, RetentionExpiresFinishedTurns) {
  auto store = std::make_shared<MemoryJournalStore>(1 << 20, 100ms);
  auto j = store->create("s");
  j->append(delta("old"));
  j->end_turn();
  j->append(delta("running"));
  store->expire(std::chrono::steady_clock::now() + 50ms);
  EXPECT_EQ(j->check(0), JournalStatus::kOk);
  store->expire(std::chrono::steady_clock::now() + 200ms);
  EXPECT_EQ(j->check(0), JournalStatus::kExpired);
  EXPECT_EQ(j->check(1), JournalStatus::kOk);
  EXPECT_EQ(j->read(1, 100).events.at(0)->event().text, "running");
}

TEST(MemoryJournal, BytesAreReturnedWhenAJournalGoes) {
  auto store = std::make_shared<MemoryJournalStore>(1 << 20, 60s);
  {
    auto j = store->create("s");
    j->append(delta(std::string(1000, 'x')));
    EXPECT_GT(store->bytes_used(), 1000u);
  }
  EXPECT_EQ(store->bytes_used(), 0u);
}

TEST(MemoryJournal, ConcurrentWriterAndReaders) {
  auto store = std::make_shared<MemoryJournalStore>(1 << 24, 60s);
  auto j = store->create("s");
  constexpr int kEvents = 20000;
  std::thread writer([&] {
    for (int i = 0; i < kEvents; ++i) j->append(delta("你好🚀"));
  });
  std::vector<std::thread> readers;
  std::vector<uint64_t> seen(4, 0);
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&, r] {
      uint64_t cursor = 0;
      while (cursor < kEvents) {
        for (const auto& e : j->read(cursor, 4096).events) {
          ASSERT_EQ(e->offset(), cursor + 1);
          cursor = e->offset();
        }
      }
      seen[r] = cursor;
    });
  }
  writer.join();
  for (auto& t : readers) t.join();
  for (auto s : seen) EXPECT_EQ(s, uint64_t(kEvents));
}

TEST(MemoryJournal, ReadersShareEntriesAndEachFaceEncodesOnce) {
  auto store = std::make_shared<MemoryJournalStore>(1 << 20, 60s);
  auto j = store->create("s");
  j->append(delta("你好 🚀"));
  std::vector<JournalEntryPtr> a, b;
  ASSERT_EQ(j->read(0, 1 << 20, a), JournalStatus::kOk);
  ASSERT_EQ(j->read(0, 1 << 20, b), JournalStatus::kOk);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].get(), b[0].get());  // the same entry, no copy of its text
  // Eight readers on eight threads ask for the WebSocket encoding at once:
  // all get the same bytes, and the one kept was made by one of them.
  std::atomic<int> encodes{0};
  std::vector<std::string_view> got(8);
  std::vector<std::thread> readers;
  for (int r = 0; r < 8; ++r) {
    readers.emplace_back([&, r] {
      got[r] = a[0]->encoded(Face::kWebSocket, [&](const StreamEvent& e) {
        ++encodes;
        return "frame:" + e.text;
      });
    });
  }
  for (auto& t : readers) t.join();
  for (const auto g : got) EXPECT_EQ(g.data(), got[0].data());  // the same bytes, not copies
  EXPECT_EQ(got[0], "frame:你好 🚀");
  EXPECT_GE(encodes.load(), 1);
  // Once made, it is never made again.
  const int before = encodes.load();
  b[0]->encoded(Face::kWebSocket, [&](const StreamEvent&) {
    ++encodes;
    return std::string("again");
  });
  EXPECT_EQ(encodes.load(), before);
  // Appending more reuses the reader's vector: a read appends.
  j->append(delta("more"));
  ASSERT_EQ(j->read(1, 1 << 20, a), JournalStatus::kOk);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1]->event().text, "more");
}

}  // namespace
}  // namespace sluice
