// AhoCorasick: one automaton over many phrases, fed byte by byte; its state
// carries across deltas of a stream. Matching is on bytes with ASCII letters
// folded to lower case, so UTF-8 phrases (Chinese included) match exactly and
// English ones in any case.
#pragma once

#include <array>
#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::moderation {

inline unsigned char fold(unsigned char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

class AhoCorasick {
 public:
  struct Hit {
    int phrase;     // index given to add()
    size_t length;  // bytes
  };

  // Adds a phrase with caller's id; call build() after the last.
  void add(std::string_view phrase, int id) {
    if (phrase.empty()) return;
    int node = 0;
    for (unsigned char c : phrase) {
      c = fold(c);
      if (nodes_[node].next[c] < 0) {
        nodes_[node].next[c] = static_cast<int32_t>(nodes_.size());
        nodes_.push_back(Node{});
        nodes_.back().depth = nodes_[node].depth + 1;
      }
      node = nodes_[node].next[c];
    }
    nodes_[node].out.push_back({id, phrase.size()});
  }

  // Failure links, folded into a full transition table (a DFA).
  void build() {
    std::queue<int> q;
    for (int c = 0; c < 256; ++c) {
      int& n = nodes_[0].next[c];
      if (n < 0) {
        n = 0;
      } else {
        nodes_[n].fail = 0;
        q.push(n);
      }
    }
    while (!q.empty()) {
      const int u = q.front();
      q.pop();
      const int f = nodes_[u].fail;
      for (const Hit& h : nodes_[f].out) nodes_[u].out.push_back(h);
      for (int c = 0; c < 256; ++c) {
        int& v = nodes_[u].next[c];
        if (v < 0) {
          v = nodes_[f].next[c];
        } else {
          nodes_[v].fail = nodes_[f].next[c];
          q.push(v);
        }
      }
    }
  }

  int step(int state, unsigned char c) const { return nodes_[state].next[fold(c)]; }
  const std::vector<Hit>& hits(int state) const { return nodes_[state].out; }
  // Bytes of the longest phrase prefix that ends here: the pending partial match.
  size_t depth(int state) const { return nodes_[state].depth; }
  size_t states() const { return nodes_.size(); }

 private:
  struct Node {
    Node() { next.fill(-1); }
    std::array<int32_t, 256> next;
    int32_t fail = 0;
    size_t depth = 0;
    std::vector<Hit> out;
  };
  std::vector<Node> nodes_{Node{}};
};

}  // namespace sluice::moderation
