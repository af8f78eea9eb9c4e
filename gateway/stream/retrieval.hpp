// Retrieval-augmented answers, the parts that need no I/O: the request a
// retriever gets, the passages a turn keeps out of its retrievers' answers,
// the `sources` items the client sees, and the prompt the model reads
// (docs/protocol.md, "Answers from a knowledge base", is the contract).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/plugin/tool_runner.hpp"
#include "gateway/protocol/messages.hpp"

namespace sluice {

// The retrieval request (plugin.h, sluice_retriever_v1) for the last user
// message of `history`, with up to `config.context_messages` user and
// assistant messages before it; "" when there is no user message.
std::string retrieval_request(const std::vector<ChatMessage>& history, const RetrievalConfig& config);

// The passages a turn uses: every retriever's, best score first (a tie
// keeps the retrievers' own order), one per id, at most `top_k`.
std::vector<Passage> top_passages(const std::vector<ToolOutcome>& outcomes, size_t top_k);

// The `sources` event's items: [{"id","title","url","snippet","score","kind":"passage"}...],
// numbered by their place (item i is cited as [i+1]); the snippet is the
// passage's whole text, as the model read it.
std::string sources_items_json(const std::vector<Passage>& passages);
// Back from those items (a turn taken over from a lost instance rebuilds
// its prompt from its journal); empty when `items_json` holds no passage.
std::vector<Passage> passages_from_items(std::string_view items_json);

// The user message the model reads in place of `question`: the numbered
// passages, then the question.
std::string prompt_with_sources(const std::vector<Passage>& passages, std::string_view question);

// `messages` with its last user message in that form (none: unchanged).
void put_sources_into_prompt(std::vector<ChatMessage>& messages, const std::vector<Passage>& passages);

}  // namespace sluice
