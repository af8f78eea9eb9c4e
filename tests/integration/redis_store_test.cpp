// The Redis store against a real redis-server started by the test: the
// Asio adapter for hiredis, the journal invariant (nothing readable before
// Redis holds it), batching, fencing, a follower on another store object
// (another instance), and a Redis restart in the middle of a stream.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include "gateway/store/redis_client.hpp"
#include "gateway/store/redis_journal_store.hpp"
#include "tests/support/redis_server.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;
using test::RedisServer;

#define SKIP_WITHOUT_REDIS()                                                        \
  if (!RedisServer::installed()) GTEST_SKIP() << "redis-server is not installed " \
                                                 "(apt-get install redis-server)"

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

StreamEvent delta(std::string text) {
  StreamEvent e;
  e.text = std::move(text);
  return e;
}

RedisStoreSettings settings_for(const RedisServer& redis, const std::string& prefix) {
  std::string error;
  RedisStoreSettings s;
  s.endpoint = *parse_redis_url(redis.url(), error);
  s.key_prefix = prefix;
  s.retention = 60s;
  return s;
}

// A started store, stopped when the test ends (however it ends).
struct StartedStore {
  std::shared_ptr<RedisJournalStore> store;
  StartedStore(const RedisServer& redis, const std::string& prefix)
      : store(std::make_shared<RedisJournalStore>(settings_for(redis, prefix))) {
    store->start();
    EXPECT_TRUE(eventually([&] { return store->reachable(); })) << "the store never connected";
  }
  ~StartedStore() { store->stop(0ms); }
  RedisJournalStore* operator->() const { return store.get(); }
};

std::string text_of(const Journal& j, uint64_t after = 0) {
  std::string out;
  for (const auto& e : j.read(after, size_t{1} << 30).events) out += e->event().text;
  return out;
}

TEST(RedisClient, CommandsRepliesAndReconnection) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  boost::asio::io_context ioc;
  std::string error;
  auto client = std::make_shared<RedisClient>(ioc, *parse_redis_url(redis.url(), error), "test");
  std::atomic<int> connects{0};  // counted on the client's thread
  client->on_connect([&] { ++connects; });
  client->start();
  std::thread t([&] {
    auto work = boost::asio::make_work_guard(ioc);
    ioc.run();
  });
  auto on_loop = [&](auto f) { boost::asio::post(ioc, f); };
  ASSERT_TRUE(eventually([&] { return client->connected(); }));

  // Pipelined commands answer in order, binary-safe.
  std::vector<RedisValue> replies(3);
  std::atomic<int> got{0};
  const std::string value("你好\0🚀", 11);
  on_loop([&] {
    client->command({"SET", "k", value}, [&](const RedisValue& v) { replies[0] = v; ++got; });
    client->command({"GET", "k"}, [&](const RedisValue& v) { replies[1] = v; ++got; });
    client->command({"NOSUCHCOMMAND"}, [&](const RedisValue& v) { replies[2] = v; ++got; });
  });
  ASSERT_TRUE(eventually([&] { return got == 3; }));
  EXPECT_EQ(replies[0].str, "OK");
  EXPECT_EQ(replies[1].str, value);
  EXPECT_TRUE(replies[2].is_error());

  // Redis dies: the client says so, commands fail at once, and it comes back by itself.
  redis.kill();
  ASSERT_TRUE(eventually([&] { return !client->connected(); }));
  RedisValue down;
  got = 0;
  on_loop([&] { client->command({"PING"}, [&](const RedisValue& v) { down = v; ++got; }); });
  ASSERT_TRUE(eventually([&] { return got == 1; }));
  EXPECT_TRUE(down.is_error());
  redis.start();
  ASSERT_TRUE(eventually([&] { return client->connected(); }, 15s));
  EXPECT_GE(connects, 2);
  got = 0;
  RedisValue up;
  on_loop([&] { client->command({"PING"}, [&](const RedisValue& v) { up = v; ++got; }); });
  ASSERT_TRUE(eventually([&] { return got == 1; }));
  EXPECT_EQ(up.str, "PONG");

  on_loop([&] { client->stop(); });
  ioc.stop();
  t.join();
}

TEST(RedisJournalStore, EventsAreReadableOnlyOnceRedisHoldsThem) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  StartedStore store(redis, "t1");
  auto journal = store->create("s1");
  std::atomic<int> told{0};
  journal->set_listener([&] { ++told; });
  EXPECT_FALSE(journal->readable_at_append());
  journal->save_record({"alice", "abc123", {{"user", "你好", {}, {}}}, 1, std::nullopt});

  // Redis holds every write for 500 ms (CLIENT PAUSE WRITE): the appends
  // meanwhile are not readable, then arrive in a few batches.
  ASSERT_TRUE(eventually([&] { return redis.call({"EXISTS", "t1:{s1}:r"}).integer == 1; }));
  ASSERT_EQ(redis.call({"CLIENT", "PAUSE", "500", "WRITE"}).str, "OK");
  const auto paused = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) journal->append(delta("第" + std::to_string(i) + "个 "));
  if (std::chrono::steady_clock::now() - paused < 400ms) {
    EXPECT_EQ(journal->last_offset(), 0u) << "nothing is readable before Redis holds it";
    EXPECT_TRUE(journal->read(0, 1 << 20).events.empty());
  }

  ASSERT_TRUE(eventually([&] { return journal->last_offset() == 100; }));
  EXPECT_GT(told.load(), 0);
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += "第" + std::to_string(i) + "个 ";
  EXPECT_EQ(text_of(*journal), expected);
  // Batched: 100 appends during one stall are a few script calls, not 100.
  EXPECT_LE(store->batches_written(), 5u);

  // In Redis: the stream's ids are the offsets, the record has the owner's fields.
  auto range = redis.call({"XRANGE", "t1:{s1}:j", "-", "+"});
  ASSERT_EQ(range.elements.size(), 100u);
  EXPECT_EQ(range.elements.front().elements[0].str, "1-0");
  EXPECT_EQ(range.elements.back().elements[0].str, "100-0");
  EXPECT_EQ(redis.call({"HGET", "t1:{s1}:r", "principal"}).str, "alice");
  EXPECT_EQ(redis.call({"HGET", "t1:{s1}:r", "token"}).str, "abc123");
  EXPECT_EQ(redis.call({"HGET", "t1:{s1}:r", "last"}).str, "100");
  EXPECT_NE(redis.call({"HGET", "t1:{s1}:r", "history"}).str.find("你好"), std::string::npos);
  const auto ttl = redis.call({"PTTL", "t1:{s1}:j"}).integer;
  EXPECT_GT(ttl, 50'000) << "the keys expire after resume.retention";
  EXPECT_LE(ttl, 60'000);
}

// store.flush_interval_us: an event after a quiet spell goes at once; the
// events that follow within the interval wait for the next flush and go
// together, several sessions' batches in it.
TEST(RedisJournalStore, EventsWithinTheFlushIntervalGoTogether) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto settings = settings_for(redis, "tf");
  settings.flush_interval = 1000ms;
  auto store = std::make_shared<RedisJournalStore>(settings);
  store->start();
  ASSERT_TRUE(eventually([&] { return store->reachable(); }));
  auto a = store->create("a");
  auto b = store->create("b");
  // Quiet for longer than the interval: the records go at once, then the first events.
  a->save_record({"alice", "h1", {}, 1, std::nullopt});
  b->save_record({"bob", "h2", {}, 1, std::nullopt});
  ASSERT_TRUE(eventually([&] { return redis.call({"EXISTS", "tf:{b}:r"}).integer == 1; }));
  std::this_thread::sleep_for(1200ms);
  const auto first = std::chrono::steady_clock::now();
  a->append(delta("风 "));
  ASSERT_TRUE(eventually([&] { return a->last_offset() == 1; }, 5s));
  const bool quick = std::chrono::steady_clock::now() - first < 700ms;
  EXPECT_TRUE(quick) << "an event after a quiet spell waited for the flush interval";
  const uint64_t batches = store->batches_written();

  // Within the interval: 3 events of a and 3 of b, 20 ms apart.
  for (int i = 0; i < 3; ++i) {
    a->append(delta("雨" + std::to_string(i) + " "));
    b->append(delta("🌧" + std::to_string(i) + " "));
    std::this_thread::sleep_for(20ms);
  }
  if (quick && std::chrono::steady_clock::now() - first < 700ms) {
    EXPECT_EQ(a->last_offset(), 1u) << "events within the interval went before the next flush";
    EXPECT_EQ(b->last_offset(), 0u);
  }
  ASSERT_TRUE(eventually([&] { return a->last_offset() == 4 && b->last_offset() == 3; }, 5s));
  EXPECT_EQ(text_of(*a), "风 雨0 雨1 雨2 ");
  EXPECT_EQ(text_of(*b), "🌧0 🌧1 🌧2 ");
  // One batch per session in that flush (without the interval: one per event).
  EXPECT_EQ(store->batches_written() - batches, 2u);
  store->stop(0ms);
}

TEST(RedisJournalStore, AFencedOwnerCanNeverAppendAgain) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  StartedStore store(redis, "t2");
  auto journal = store->create("s2");
  journal->save_record({"bob", "h", {}, 0, std::nullopt});
  journal->append(delta("before"));
  ASSERT_TRUE(eventually([&] { return journal->last_offset() == 1; }));

  // Another instance took the session over: the record's epoch moved on.
  redis.call({"HINCRBY", "t2:{s2}:r", "epoch", "1"});
  journal->append(delta(" after"));
  journal->append(delta(" and more"));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(journal->last_offset(), 1u) << "a refused append is never shown";
  EXPECT_EQ(redis.call({"XLEN", "t2:{s2}:j"}).integer, 1);
  EXPECT_EQ(redis.call({"HGET", "t2:{s2}:r", "last"}).str, "1");
}

TEST(RedisJournalStore, TheScriptTakesABatchOnceAndRefusesGaps) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  const std::string& script = redis_append_script();
  int seq = 0;
  // One session's batch in a call of its own: its one reply.
  auto batch = [&](const std::string& first, const std::string& create, std::vector<std::string> events,
                   std::vector<std::string> fields = {}, int batch_seq = 0) {
    std::vector<std::string> args{"EVAL", script, "2", "t3:{s}:r", "t3:{s}:j", "1", first, "60000", "1000",
                                  "t3:{s}:c", create, /*lease*/ "0", std::to_string(fields.size() / 2),
                                  std::to_string(batch_seq ? batch_seq : ++seq), std::to_string(events.size())};
    args.insert(args.end(), fields.begin(), fields.end());
    args.insert(args.end(), events.begin(), events.end());
    auto reply = redis.call(args);
    if (reply.error) return reply;
    EXPECT_EQ(reply.elements.size(), 1u);
    return reply.elements.empty() ? reply : reply.elements[0];
  };
  EXPECT_EQ(batch("1", "inst-a", {R"({"t":"d","x":"a"})", R"({"t":"d","x":"b"})"}).integer, 2);
  // The creating batch again (its reply was lost): its own creator's, so taken, once.
  EXPECT_EQ(batch("1", "inst-a", {R"({"t":"d","x":"a"})", R"({"t":"d","x":"b"})"}).integer, 2);
  // The same batch again as a plain one: taken once.
  EXPECT_EQ(batch("1", "", {R"({"t":"d","x":"a"})", R"({"t":"d","x":"b"})"}).integer, 2);
  EXPECT_EQ(redis.call({"XLEN", "t3:{s}:j"}).integer, 2);
  // A batch sent again merged with later events: only the new ones are appended.
  EXPECT_EQ(batch("2", "", {R"({"t":"d","x":"b"})", R"({"t":"d","x":"c"})", R"({"t":"d","x":"d"})"}).integer, 4);
  auto range = redis.call({"XRANGE", "t3:{s}:j", "-", "+"});
  ASSERT_EQ(range.elements.size(), 4u);
  EXPECT_EQ(range.elements[2].elements[0].str, "3-0");
  EXPECT_EQ(range.elements[2].elements[1].elements[1].str, R"({"t":"d","x":"c"})");
  // A batch that would leave a hole is refused.
  auto gap = batch("7", "", {R"({"t":"d","x":"g"})"});
  EXPECT_TRUE(gap.error);
  EXPECT_NE(gap.str.find("GAP"), std::string::npos) << gap.str;
  // Another instance creating the same session is refused.
  auto other = batch("1", "inst-b", {R"({"t":"d","x":"x"})"});
  EXPECT_TRUE(other.error);
  EXPECT_NE(other.str.find("EXISTS"), std::string::npos) << other.str;
  EXPECT_EQ(batch("5", "", {R"({"t":"d","x":"e"})"}, {"history", "new 新"}).integer, 5);
  EXPECT_EQ(redis.call({"XLEN", "t3:{s}:j"}).integer, 5);
  // An older batch that Redis runs late (a copy on a dropped connection):
  // its events are held already, and its record fields are not taken.
  EXPECT_EQ(batch("5", "", {R"({"t":"d","x":"e"})"}, {"history", "old 旧"}, 1).integer, 5);
  EXPECT_EQ(redis.call({"HGET", "t3:{s}:r", "history"}).str, "new 新");
  EXPECT_EQ(redis.call({"XLEN", "t3:{s}:j"}).integer, 5);
}

// The batches of several sessions share one call; each is taken or refused
// on its own (a fenced one does not hold back the others).
TEST(RedisJournalStore, OneCallCarriesManySessionsEachTakenOrRefusedOnItsOwn) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  const std::string& script = redis_append_script();
  auto block = [](const std::string& s, const std::string& epoch, const std::string& first,
                  std::vector<std::string> events, std::vector<std::string> fields = {}) {
    std::vector<std::string> b{epoch, first, "60000", "1000", "t5:{" + s + "}:c", first == "1" ? "inst" : "",
                               "0", std::to_string(fields.size() / 2), first, std::to_string(events.size())};
    b.insert(b.end(), fields.begin(), fields.end());
    b.insert(b.end(), events.begin(), events.end());
    return b;
  };
  auto call = [&](std::vector<std::pair<std::string, std::vector<std::string>>> blocks) {
    std::vector<std::string> args{"EVAL", script, std::to_string(2 * blocks.size())};
    for (const auto& [s, b] : blocks) {
      args.push_back("t5:{" + s + "}:r");
      args.push_back("t5:{" + s + "}:j");
    }
    for (const auto& [s, b] : blocks) args.insert(args.end(), b.begin(), b.end());
    return redis.call(args);
  };
  auto r = call({{"a", block("a", "1", "1", {R"({"t":"d","x":"甲"})", R"({"t":"d","x":"乙"})"})},
                 {"b", block("b", "1", "1", {R"({"t":"d","x":"🅱"})"}, {"history", "b 的历史"})},
                 {"c", block("c", "1", "1", {})}});
  ASSERT_FALSE(r.error) << r.str;
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].integer, 2);
  EXPECT_EQ(r.elements[1].integer, 1);
  EXPECT_EQ(r.elements[2].integer, 0);  // a record with no event yet
  EXPECT_EQ(redis.call({"HGET", "t5:{b}:r", "history"}).str, "b 的历史");
  EXPECT_EQ(redis.call({"HGET", "t5:{c}:r", "owner"}).str, "inst");

  // b was taken over elsewhere (its epoch moved on) and a's batch leaves a gap:
  // both refused, c's taken all the same.
  redis.call({"HINCRBY", "t5:{b}:r", "epoch", "1"});
  r = call({{"a", block("a", "1", "9", {R"({"t":"d","x":"洞"})"})},
            {"b", block("b", "1", "2", {R"({"t":"d","x":"晚了"})"})},
            {"c", block("c", "1", "1", {R"({"t":"d","x":"丙"})"})}});
  ASSERT_FALSE(r.error) << r.str;
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_TRUE(r.elements[0].error);
  EXPECT_NE(r.elements[0].str.find("GAP"), std::string::npos) << r.elements[0].str;
  EXPECT_TRUE(r.elements[1].error);
  EXPECT_NE(r.elements[1].str.find("FENCED"), std::string::npos) << r.elements[1].str;
  EXPECT_FALSE(r.elements[2].error) << r.elements[2].str;
  EXPECT_EQ(r.elements[2].integer, 1);
  EXPECT_EQ(redis.call({"XLEN", "t5:{c}:j"}).integer, 1);
  EXPECT_EQ(redis.call({"XLEN", "t5:{a}:j"}).integer, 2);
  EXPECT_EQ(redis.call({"XLEN", "t5:{b}:j"}).integer, 1);
}

TEST(RedisJournalStore, AnotherInstanceFollowsTheStreamWithNoGapOrDuplicate) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  StartedStore owner_store(redis, "t4");
  StartedStore follower_store(redis, "t4");  // another gateway instance
  auto owner = owner_store->create("s4");
  owner->save_record({"carol", "hash-of-token", {{"user", "讲个笑话", {}, {}}}, 1, std::nullopt});
  std::string expected;
  for (int i = 0; i < 50; ++i) {
    const std::string t = "片段" + std::to_string(i) + "🚀 ";
    owner->append(delta(t));
    expected += t;
  }
  ASSERT_TRUE(eventually([&] { return owner->last_offset() == 50; }));

  std::optional<JournalStore::Opened> opened;
  std::atomic<bool> answered{false};
  // The owner keeps appending while the follower opens: the follower's
  // subscription and its read of the stream overlap these appends.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 50; i < 400 && !stop; ++i) {
      owner->append(delta("片段" + std::to_string(i) + "🚀 "));
      std::this_thread::sleep_for(1ms);
    }
  });
  follower_store->open("s4", [&](JournalStore::Opened o) {
    opened = std::move(o);
    answered = true;
  });
  ASSERT_TRUE(eventually([&] { return answered.load(); }));
  writer.join();
  for (int i = 50; i < 400; ++i) expected += "片段" + std::to_string(i) + "🚀 ";
  ASSERT_EQ(opened->outcome, JournalStore::Opened::Outcome::kFound);
  EXPECT_EQ(opened->record.principal, "carol");
  EXPECT_EQ(opened->record.token_hash, "hash-of-token");
  ASSERT_EQ(opened->record.history.size(), 1u);
  EXPECT_EQ(opened->record.history[0].content, "讲个笑话");
  auto& follower = *opened->journal;
  ASSERT_TRUE(eventually([&] { return follower.last_offset() == 400; }))
      << "follower at " << follower.last_offset();
  EXPECT_EQ(text_of(follower), expected);
  EXPECT_EQ(text_of(follower), text_of(*owner));
  // Offsets as the owner gave them.
  auto all = follower.read(0, size_t{1} << 30);
  for (size_t i = 0; i < all.events.size(); ++i) ASSERT_EQ(all.events[i]->offset(), i + 1);

  // An unknown session is unknown.
  std::optional<JournalStore::Opened> none;
  answered = false;
  follower_store->open("nope", [&](JournalStore::Opened o) {
    none = std::move(o);
    answered = true;
  });
  ASSERT_TRUE(eventually([&] { return answered.load(); }));
  EXPECT_EQ(none->outcome, JournalStore::Opened::Outcome::kUnknown);
}

TEST(RedisJournalStore, ARedisRestartLosesNothingAndTheFollowerCatchesUp) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis(/*persistent=*/true);
  StartedStore owner_store(redis, "t5");
  StartedStore follower_store(redis, "t5");
  auto owner = owner_store->create("s5");
  owner->save_record({"dave", "h", {}, 1, std::nullopt});
  std::string expected;
  for (int i = 0; i < 10; ++i) {
    owner->append(delta("前" + std::to_string(i)));
    expected += "前" + std::to_string(i);
  }
  ASSERT_TRUE(eventually([&] { return owner->last_offset() == 10; }));
  std::optional<JournalStore::Opened> opened;
  std::atomic<bool> answered{false};
  follower_store->open("s5", [&](JournalStore::Opened o) {
    opened = std::move(o);
    answered = true;
  });
  ASSERT_TRUE(eventually([&] { return answered.load(); }));
  ASSERT_EQ(opened->outcome, JournalStore::Opened::Outcome::kFound);
  auto& follower = *opened->journal;
  ASSERT_TRUE(eventually([&] { return follower.last_offset() == 10; }));

  // Redis crashes mid-answer; the answer goes on meanwhile: its events are
  // held back (never shown) and written, in order, once Redis is back.
  redis.kill();
  ASSERT_TRUE(eventually([&] { return !owner_store->reachable(); }));
  for (int i = 0; i < 10; ++i) {
    owner->append(delta("后" + std::to_string(i)));
    expected += "后" + std::to_string(i);
  }
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(owner->last_offset(), 10u) << "nothing is shown while Redis is away";
  EXPECT_EQ(follower.last_offset(), 10u);
  redis.start();
  ASSERT_TRUE(eventually([&] { return owner->last_offset() == 20; }, 15s)) << owner->last_offset();
  // The follower's subscription was lost with the connection: it reads what it missed.
  ASSERT_TRUE(eventually([&] { return follower.last_offset() == 20; }, 15s)) << follower.last_offset();
  EXPECT_EQ(text_of(*owner), expected);
  EXPECT_EQ(text_of(follower), expected);
  EXPECT_EQ(redis.call({"XLEN", "t5:{s5}:j"}).integer, 20);
}

}  // namespace
}  // namespace sluice
