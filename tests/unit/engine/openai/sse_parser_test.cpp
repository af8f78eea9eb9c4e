#include "gateway/engine/openai/sse_parser.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "gateway/engine/openai/chunk_decoder.hpp"

namespace sluice {
namespace {

std::string read_fixture(const std::string& name) {
  std::ifstream in(std::string(SLUICE_FIXTURES) + "/vllm/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<SseEvent> parse_parts(const std::vector<std::string_view>& parts) {
  std::vector<SseEvent> events;
  SseParser p;
  for (auto part : parts) {
    EXPECT_EQ(p.feed(part, [&](const SseEvent& e) { events.push_back(e); }),
              SseParser::Status::kOk);
  }
  return events;
}

bool same(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].data != b[i].data || a[i].event != b[i].event || a[i].id != b[i].id) return false;
  }
  return true;
}

std::string content_of(const std::vector<SseEvent>& events) {
  ChunkDecoder decoder;
  std::string text;
  for (const auto& e : events) text += decoder.decode(e.data).content;
  return text;
}

class RecordedStream : public ::testing::TestWithParam<const char*> {};

TEST_P(RecordedStream, EverySplitPointGivesTheSameEvents) {
  const std::string stream = read_fixture(GetParam());
  ASSERT_FALSE(stream.empty());
  const auto whole = parse_parts({stream});
  ASSERT_GE(whole.size(), 3u);
  for (size_t i = 0; i <= stream.size(); ++i) {
    const std::string_view s = stream;
    const auto split = parse_parts({s.substr(0, i), s.substr(i)});
    ASSERT_TRUE(same(whole, split)) << "split at byte " << i;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < stream.size(); ++i) bytes.push_back(std::string_view(stream).substr(i, 1));
  EXPECT_TRUE(same(whole, parse_parts(bytes)));
  // Three pieces, over a stride of cut pairs.
  for (size_t i = 0; i < stream.size(); i += 7) {
    for (size_t j = i; j <= stream.size(); j += 13) {
      const std::string_view s = stream;
      ASSERT_TRUE(same(whole, parse_parts({s.substr(0, i), s.substr(i, j - i), s.substr(j)})))
          << i << "," << j;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Vllm, RecordedStream,
                         ::testing::Values("stream_zh_emoji.sse", "stream_crlf_keepalive.sse",
                                           "stream_error_midway.sse"));

TEST(SseParser, RecordedVllmStreamGivesTheExpectedText) {
  const auto events = parse_parts({read_fixture("stream_zh_emoji.sse")});
  EXPECT_EQ(events.back().data, "[DONE]");
  EXPECT_EQ(content_of(events), read_fixture("stream_zh_emoji.expected.txt"));
  EXPECT_EQ(content_of(parse_parts({read_fixture("stream_crlf_keepalive.sse")})),
            read_fixture("stream_zh_emoji.expected.txt"));
}

TEST(SseParser, FieldsCommentsAndLineEndings) {
  const auto events = parse_parts(
      {"\xEF\xBB\xBF: comment\nevent: update\nid: 7\ndata: a\ndata:b\r\ndata:  c\r\r"
       "retry: 10\nunknown: x\ndata\n\n"
       "data: only-blank-line-dispatches\n"});
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event, "update");
  EXPECT_EQ(events[0].id, "7");
  EXPECT_EQ(events[0].data, "a\nb\n c");
  EXPECT_EQ(events[1].data, "");  // "data" with no colon is an empty data line
  EXPECT_EQ(events[1].id, "7");   // the last event id persists
}

TEST(SseParser, BomSplitAcrossFeeds) {
  const auto events = parse_parts({"\xEF", "\xBB", "\xBF" "data: x\n\n"});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "x");
  const auto not_bom = parse_parts({"\xEF\xBB", "data: y\n\n"});
  EXPECT_TRUE(not_bom.empty());  // a broken first line is not an event
}

TEST(SseParser, OversizedEventFailsAndStaysFailed) {
  SseParser p(64);
  int n = 0;
  auto count = [&](const SseEvent&) { ++n; };
  EXPECT_EQ(p.feed("data: small\n\n", count), SseParser::Status::kOk);
  EXPECT_EQ(p.feed("data: " + std::string(100, 'x'), count), SseParser::Status::kEventTooLarge);
  EXPECT_EQ(p.feed("\n\ndata: more\n\n", count), SseParser::Status::kEventTooLarge);
  EXPECT_EQ(n, 1);
  // Many data lines that add up past the limit fail too.
  SseParser q(64);
  SseParser::Status s = SseParser::Status::kOk;
  for (int i = 0; i < 20 && s == SseParser::Status::kOk; ++i) s = q.feed("data: 0123456789\n", count);
  EXPECT_EQ(s, SseParser::Status::kEventTooLarge);
}

}  // namespace
}  // namespace sluice
