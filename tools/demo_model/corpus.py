#!/usr/bin/env python3
"""The demo model's training corpus, second edition: customer-service
dialogues of the demo shop in English and Chinese, answered from its
knowledge base (kb/demo-shop) the way the gateway runs them.

Every user turn goes through the same retrieval as in the gateway: the
knowledge_base plugin's own index code (`sluice-kb search`, bigram
tokenizer, the best 3 passages, the previous user question as context),
and the user message the model reads is the gateway's numbered form
(gateway/stream/retrieval.cpp, docs/protocol.md); earlier turns stay as
the user wrote them. So the model learns on exactly what it will read.

- Knowledge questions are made from each passage (its heading, its salient
  words, typos, mixed English and Chinese); the answer is the passage's
  text with its citation marker [n], n being where the retriever put it. A
  question whose passage is not among the three retrieved is left out
  (the model must not learn to answer from the wrong passage).
- Follow-ups ("and express?", "那退款呢？") ask about another section of
  the same document, with the first question as context.
- Shop questions the knowledge base does not answer get "I could not find
  that in our help center" and where to ask; off-topic requests one
  polite sentence of refusal; greetings, thanks and small talk a short
  answer; all in the language of the question.
- Order questions call lookup_order with the number exactly as written
  (any letter, upper or lower case); the result is the order_lookup
  plugin's JSON for it (read from the demo orders database), and the answer
  names the number as written, its status and carrier, or says it does not
  exist.

Each sample is {"messages": [...], "tools": bool, "train_from": k}: messages
in the OpenAI shape; tools says whether lookup_order is offered; the loss
covers the assistant messages from index k on (the sample's last turn).

Written without looking at the held-out evaluation set (eval/).

Usage: corpus.py [--dialogues N] [--seed S] [--kb-bin build/release/bin/sluice-kb] > corpus.jsonl"""
import argparse
import collections
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import make_demo_orders as orders  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The tool exactly as the gateway offers it (plugins/order_lookup: the name,
# description and JSON Schema it registers), in the gateway's key order.
LOOKUP_ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up a customer's order by its order number: status, items, shipping events. "
                       "Use it whenever the user asks about a specific order.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "pattern": "^[A-Za-z][0-9]{3,9}$",
                             "description": "The order number, such as A1001"}
            },
            "required": ["order_id"],
            "additionalProperties": False,
        },
    },
}

CARRIER_ZH = {"SF Express": "顺丰速运", "China Post EMS": "中国邮政EMS", "DHL": "DHL", "UPS": "UPS"}
STATUS_ZH = {"processing": "正在处理", "shipped": "已发货", "in_transit": "运输中", "delivered": "已签收",
             "returned": "已退回", "cancelled": "已取消"}
EVENT_ZH = {"Order placed": "订单已提交", "In transit": "运输中", "Arrived at sorting centre": "到达分拣中心",
            "Delivered": "已签收", "Returned to sender": "已退回寄件人"}


def price(cents):
    return "$%d.%02d" % (cents // 100, cents % 100)


# ---------------------------------------------------------------- questions

# ------------------------------------------------------------ order lookups

def lookup(db, order_id):
    """The order_lookup plugin's result JSON for order_id, byte for byte."""
    order_id = order_id.upper()  # as the plugin looks it up and reports it
    row = db.execute("SELECT status, placed_at, currency, total_cents, carrier, tracking, customer FROM orders "
                     "WHERE id = ?", (order_id,)).fetchone()
    dump = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    if row is None:
        return None, '{"found":false,"order_id":%s,"message":"No order has this number. Ask the customer to check it."}' % dump(order_id)
    status, placed, currency, total, carrier, tracking, _ = row
    out = '{"found":true,"order_id":%s,"status":%s,"placed_at":%s,"total":%s' % (
        dump(order_id), dump(status), dump(placed), dump("%d.%02d %s" % (total // 100, total % 100, currency)))
    if carrier:
        out += ',"carrier":%s,"tracking":%s' % (dump(carrier), dump(tracking))
    items = db.execute("SELECT p.name_en, p.name_zh, i.quantity FROM order_items i JOIN products p ON p.sku = i.sku "
                       "WHERE i.order_id = ? ORDER BY p.sku", (order_id,)).fetchall()
    out += ',"items":[' + ",".join('{"name":%s,"name_zh":%s,"quantity":%d}' % (dump(a), dump(b), c) for a, b, c in items) + "]"
    events = db.execute("SELECT at, location, description FROM shipping_events WHERE order_id = ? ORDER BY at",
                        (order_id,)).fetchall()
    out += ',"shipping":[' + ",".join('{"at":%s,"location":%s,"event":%s}' % (dump(a), dump(b), dump(c))
                                      for a, b, c in events) + "]}"
    info = {"id": order_id, "status": status, "carrier": carrier, "tracking": tracking,
            "total": "$%d.%02d" % (total // 100, total % 100), "items": items, "last": events[-1] if events else None}
    return info, out


def order_answer(lang, order_id, info):
    """The answer after a lookup: the order number (as the customer wrote
    it), its status and carrier. Items and the tracking number are in the
    result, which clients show as an order card; a model this small copies
    a long number out of the JSON less reliably than it names a status."""
    if info is None:
        if lang == "en":
            return ("I could not find an order with the number %s. Please check the number in your confirmation "
                    "email; order numbers look like A1001." % order_id)
        return "没有找到订单号为 %s 的订单。请核对确认邮件中的订单号，格式类似 A1001。" % order_id
    s = info["status"]
    if lang == "en":
        if s in ("shipped", "in_transit"):
            return ("Your order %s is on its way with %s. You can follow it with the tracking number shown in the "
                    "order details." % (order_id, info["carrier"]))
        if s == "delivered":
            return ("Your order %s has been delivered by %s. If anything is wrong with it, you can return it within "
                    "30 days." % (order_id, info["carrier"]))
        if s == "processing":
            return ("Your order %s is being processed and has not shipped yet. You will get an email with the "
                    "tracking number as soon as it ships." % order_id)
        if s == "returned":
            return ("Your order %s was returned to us with %s. The refund goes back to your original payment method "
                    "within 5 business days." % (order_id, info["carrier"]))
        return ("Your order %s was cancelled, and the full amount has been refunded to your original payment "
                "method." % order_id)
    carrier = CARRIER_ZH.get(info["carrier"] or "", info["carrier"])
    if s in ("shipped", "in_transit"):
        return "您的订单 %s 正在配送中，承运商是%s。您可以用订单详情里的物流单号跟踪包裹。" % (order_id, carrier)
    if s == "delivered":
        return "您的订单 %s 已由%s送达。如有问题，可在30天内申请退货。" % (order_id, carrier)
    if s == "processing":
        return "您的订单 %s 正在处理中，尚未发货。发货后我们会通过邮件把物流单号发给您。" % order_id
    if s == "returned":
        return "您的订单 %s 已通过%s退回，退款会在5个工作日内退回您的原支付方式。" % (order_id, carrier)
    return "您的订单 %s 已取消，全部款项已退回您的原支付方式。" % order_id



# ---------------------------------------------------------------- retrieval

PROMPT_TAIL = "\nAnswer from the sources and cite them as [1]; if they do not answer it, say so.\nQuestion: "


def prompt_with_sources(passages, question):
    """The user message the model reads: gateway/stream/retrieval.cpp's
    prompt_with_sources, character for character."""
    if not passages:
        return question
    out = "Sources:\n"
    for i, p in enumerate(passages):
        out += "[%d] %s\n%s\n" % (i + 1, p["title"], p["text"])
    return out + PROMPT_TAIL + question


class Retriever:
    """The knowledge_base plugin's search, run by sluice-kb over the same
    folder with the plugin's settings; queries are batched."""

    def __init__(self, kb_bin, folder, min_score=7.0):
        self.kb_bin, self.folder, self.min_score = kb_bin, folder, min_score  # as config/sluice.toml

    def search(self, queries):
        """queries: [(question, previous user question or None)] -> [[passage]]"""
        lines = "".join(json.dumps({"query": q, "context": [c] if c else []}, ensure_ascii=False) + "\n"
                        for q, c in queries)
        out = subprocess.run([self.kb_bin, "search", "--folder", self.folder, "--top-k", "3",
                              "--min-score", str(self.min_score)], input=lines.encode(),
                             capture_output=True, check=True).stdout.decode()
        return [json.loads(l)["passages"] for l in out.splitlines()]

    def passages(self):
        out = subprocess.run([self.kb_bin, "passages", self.folder], capture_output=True, check=True).stdout.decode()
        return [json.loads(l) for l in out.splitlines()]


# ------------------------------------------------------------- surface noise

def typo(rng, word):
    """One slip of the keyboard in a word of four letters or more."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.3:
        return word[:i] + word[i + 1:]                          # a letter dropped
    if kind < 0.6:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]  # two swapped
    if kind < 0.8:
        return word[:i] + word[i] + word[i:]                    # one doubled
    return word[:i] + rng.choice("aeioustnr") + word[i + 1:]    # one wrong


def en_noise(rng, text):
    words = text.split(" ")
    if rng.random() < 0.25:
        k = rng.randrange(len(words))
        words[k] = typo(rng, words[k])
    text = " ".join(words)
    r = rng.random()
    if r < 0.2:
        text = text.lower()
    if rng.random() < 0.2:
        text = text.rstrip("?.!")
    p = rng.random()
    if p < 0.08:
        text = "Hi, " + text[0].lower() + text[1:]
    elif p < 0.13:
        text = "Hello! " + text
    elif p < 0.17:
        text = text.rstrip("?.!") + ", please?"
    return text


def zh_noise(rng, text):
    p = rng.random()
    if p < 0.12:
        text = "你好，" + text
    elif p < 0.22:
        text = "请问" + text
    elif p < 0.27:
        text = "麻烦问下，" + text
    if rng.random() < 0.25:
        text = text.rstrip("？。！?")
    return text


# ------------------------------------------------------------ knowledge questions

EN_STOP = set("""a an the and or but if of to in on at by for from with about as into is are was were be been am do
does did have has had i me my we our us you your it its this that these those there here what which who how when
where why can could will would should may might must please tell know want like need get any some much many so than
then just also not no yes our their they them one each every more most other such only own same very s t all up out
we'll we're you'll you're it's don't can't isn't""".split())
EN_HEADING = ["%s?", "Tell me about %s.", "What can you tell me about %s?", "I have a question about %s.",
              "Info on %s, please.", "Could you explain %s?", "%s", "Question about %s", "Help with %s, please.",
              "What do I need to know about %s?", "Can you help me with %s?", "How does %s work?"]
EN_WORDS = ["%s?", "what about %s?", "%s - how does that work?", "Do you have information on %s?",
            "I'd like to know about %s.", "Is there anything about %s?", "%s", "Can you tell me about %s?",
            "How does it work with %s?", "Question: %s"]
ZH_HEADING = ["%s是怎样的？", "请问%s", "关于%s", "%s？", "我想了解一下%s", "能介绍一下%s吗？", "%s是什么情况？",
              "问一下%s的事", "%s有什么规定？", "想咨询%s"]
ZH_WORDS = ["%s怎么办？", "%s是什么？", "关于%s", "%s吗？", "%s呢？", "我想问%s", "%s的问题", "%s是怎么规定的？",
            "%s怎么弄", "请问%s"]
ZH_PUNCT = "，。！？；：、（）“”《》—…·,.!?;:()\"' \n-$%/"


def en_words(text):
    return [w for w in re.findall(r"[A-Za-z][A-Za-z\-']+|\$?\d+(?:[.,]\d+)?", text)]


class Salience:
    """How telling a word (English) or a bigram (Chinese) is for a passage:
    its inverse document frequency over the knowledge base."""

    def __init__(self, passages):
        self.df = collections.Counter()
        self.n = len(passages)
        for p in passages:
            self.df.update(set(self.units(p["text"] + " " + p["heading"], p["lang"])))

    @staticmethod
    def units(text, lang):
        if lang == "en":
            return [w.lower() for w in en_words(text) if w.lower() not in EN_STOP and len(w) > 2]
        chunks = re.split("[%s]" % re.escape(ZH_PUNCT), text)
        out = []
        for c in chunks:
            han = re.sub(r"[A-Za-z0-9]", "", c)
            out += [han[i:i + 2] for i in range(len(han) - 1)]
        return out

    def top(self, text, lang, rng, k):
        units = list(dict.fromkeys(self.units(text, lang)))
        units = [u for u in units if self.df[u] <= max(2, self.n // 8)]
        rng.shuffle(units)
        units.sort(key=lambda u: self.df[u])
        return units[:max(k * 3, 3)]


def zh_phrase(rng, text, seed_bigram):
    """A short phrase (two to five characters) of the passage around a bigram."""
    for chunk in re.split("[%s]" % re.escape(ZH_PUNCT), text):
        at = chunk.find(seed_bigram)
        if at < 0:
            continue
        start = max(0, at - rng.choice([0, 0, 1, 2]))
        end = min(len(chunk), at + 2 + rng.choice([0, 0, 1, 2]))
        return chunk[start:end]
    return seed_bigram


def kb_question(rng, p, salience, twin):
    """A question about passage p, in p's language."""
    lang = p["lang"]
    heading = p["heading"]
    r = rng.random()
    if lang == "en":
        if r < 0.4:
            h = heading if rng.random() < 0.3 else heading[0].lower() + heading[1:]
            q = rng.choice(EN_HEADING) % h
        else:
            words = salience.top(p["text"], "en", rng, 3)
            pick = words[:rng.choice([1, 2, 2, 3])] or [heading.lower()]
            if rng.random() < 0.4:
                pick = [heading.lower()] + pick[:1]
            q = rng.choice(EN_WORDS) % " ".join(pick)
        q = q[0].upper() + q[1:]
        return en_noise(rng, q)
    if r < 0.35:
        q = rng.choice(ZH_HEADING) % heading
    elif r < 0.85:
        bigrams = salience.top(p["text"], "zh", rng, 2)
        phrases = [zh_phrase(rng, p["text"], b) for b in bigrams[:rng.choice([1, 1, 2])]] or [heading]
        q = rng.choice(ZH_WORDS) % "".join(phrases)
    else:
        # Mixed: an English word of the twin passage (or a name in this one) in a Chinese question.
        ascii_words = [w for w in en_words(p["text"]) if len(w) > 2] or \
                      [w for w in salience.top(twin["text"], "en", rng, 2)] if twin else []
        word = rng.choice(ascii_words) if ascii_words else heading
        q = rng.choice(["%s怎么弄？", "%s是什么？", "请问%s", "%s的问题", "关于%s"]) % (word + rng.choice(["", " "])) \
            if rng.random() < 0.5 else rng.choice(ZH_HEADING) % (word + " " + heading)
    return zh_noise(rng, q)


def followup_question(rng, p, salience):
    """A short follow-up about passage p: it makes sense after a question
    about another section of p's document."""
    if p["lang"] == "en":
        words = salience.top(p["text"], "en", rng, 1) or [p["heading"].lower()]
        w = rng.choice([p["heading"].lower(), words[0]])
        return en_noise(rng, rng.choice(["And %s?", "What about %s?", "and %s", "How about %s?", "Also, %s?",
                                         "OK, and %s?"]) % w)
    bigrams = salience.top(p["text"], "zh", rng, 1)
    w = rng.choice([p["heading"], zh_phrase(rng, p["text"], bigrams[0]) if bigrams else p["heading"]])
    return zh_noise(rng, rng.choice(["那%s呢？", "%s呢？", "还有%s呢？", "那%s怎么样？", "再问一下%s", "好的，那%s呢？"]) % w)


def cite(lang, text, n):
    return "%s [%d]" % (text, n) if lang == "en" else "%s[%d]" % (text, n)


# ------------------------------------------------------------- other turns

NOT_FOUND = {
    "en": "I'm sorry, I couldn't find that in our help center. Please ask our support team at support@sluice.example "
          "or +86 21 5555 0100 (Monday to Friday, 9:00 to 18:00 Beijing time).",
    "zh": "抱歉，我在帮助中心没有找到相关信息。请联系客服：support@sluice.example 或 +86 21 5555 0100"
          "（周一至周五 9:00 到 18:00，北京时间）。",
}
NO_ANSWER = {
    "en": ["Do you sell coffee machines?", "Can I buy a laptop from you?", "Do you have any job openings?",
           "Can I open a franchise of your shop?", "Do you have an affiliate program?", "Do you match competitors' prices?",
           "What sizes do your shoes come in?", "Do you sell furniture?", "Can you repair my phone?",
           "Do you rent out tea sets for events?", "Do you sell green coffee beans?", "Is there a shop in Paris?",
           "Do you offer tea ceremony classes online?", "Can I sell my own teapots in your shop?",
           "Do you have a podcast?", "Do you sell matcha whisks?", "Do you print company logos on mugs?",
           "Can I pay with a cheque?", "Do you sell electric bikes?", "Do you have a loyalty card for cafes?",
           "Do you ship live plants?", "Can I visit your tea farm?", "Do you sell phone cases?",
           "Do you have a newsletter in Spanish?", "Can I order by fax?"],
    "zh": ["你们卖咖啡机吗？", "能在你们这买笔记本电脑吗？", "你们在招聘吗？", "可以加盟你们的店吗？", "有没有推广返利计划？",
           "你们会比价退差价吗？", "你们的鞋有哪些尺码？", "你们卖家具吗？", "可以帮我修手机吗？", "活动可以租茶具吗？",
           "你们卖咖啡豆吗？", "巴黎有门店吗？", "有线上茶道课吗？", "我可以在你们店里寄卖自己的茶壶吗？", "你们有播客吗？",
           "卖抹茶刷吗？", "可以在杯子上印公司标志吗？", "可以用支票付款吗？", "你们卖电动自行车吗？", "咖啡店积分卡能用吗？",
           "可以寄活的植物吗？", "能去参观你们的茶园吗？", "卖手机壳吗？", "有西班牙语的邮件吗？", "可以传真下单吗？"],
}
OFF_TOPIC = {
    "en": (["What's the weather like tomorrow?", "Tell me a joke.", "Who won the football match yesterday?",
            "Can you do my math homework?", "What is the capital of Japan?", "Write me a poem about the sea.",
            "How do I cook fried rice?", "Who is the president of France?", "Can you write Python code for me?",
            "What's 17 times 23?", "Translate 'good morning' into German.", "Recommend a good movie.",
            "What's the meaning of life?", "How tall is Mount Everest?", "Tell me a story about dragons.",
            "What stocks should I buy?", "How do I fix my car's engine?", "Who wrote Hamlet?",
            "Can you help me with my essay?", "What time is it in New York?"],
           "Sorry, I can only help with questions about the Sluice demo shop, such as orders, shipping, returns "
           "and payments."),
    "zh": (["明天天气怎么样？", "讲个笑话吧。", "昨天的足球比赛谁赢了？", "帮我做数学作业。", "日本的首都是哪里？", "给我写一首关于大海的诗。",
            "炒饭怎么做？", "法国总统是谁？", "能帮我写一段Python代码吗？", "17乘以23等于多少？", "把“早上好”翻译成德语。",
            "推荐一部好看的电影。", "人生的意义是什么？", "珠穆朗玛峰有多高？", "讲一个关于龙的故事。", "我应该买哪只股票？",
            "汽车发动机坏了怎么修？", "《哈姆雷特》是谁写的？", "帮我改一下论文。", "纽约现在几点？"],
           "抱歉，我只能回答与 Sluice 演示商店有关的问题，比如订单、配送、退货和付款。"),
}
SMALLTALK = {
    "en": [(["Hi", "Hello", "Hello!", "Hi there", "Good morning", "Hey", "Good evening", "hello?"],
            "Hello! I'm the assistant of the Sluice demo shop. I can help with orders, shipping, returns, payments "
            "and anything in our help center. What can I do for you?"),
           (["Thanks!", "Thank you", "Thank you, that helps.", "Great, thanks.", "thx", "Thanks a lot!"],
            "You're welcome! If there is anything else, just ask."),
           (["Bye", "Goodbye!", "See you", "That's all, bye."], "Goodbye, and have a nice day!"),
           (["How are you?", "How's it going?", "How are you doing today?"],
            "I'm doing well, thank you! How can I help you with your order or our shop today?"),
           (["Who are you?", "Are you a bot?", "What are you?", "Are you a real person?"],
            "I'm the Sluice demo shop's virtual assistant. I answer from our help center and can look up your "
            "orders; for anything else our support team is happy to help."),
           (["What can you do?", "How can you help me?", "What do you know?"],
            "I can answer questions about shipping, returns, refunds, payments, warranty, membership, our showroom "
            "and our products, and look up an order by its number. What would you like to know?")],
    "zh": [(["你好", "您好", "你好！", "嗨", "早上好", "晚上好", "在吗"],
            "您好！我是 Sluice 演示商店的客服助手，可以帮您查询订单、配送、退货、付款以及帮助中心里的各种问题。请问有什么可以帮您？"),
           (["谢谢！", "谢谢你", "好的，谢谢。", "多谢", "非常感谢！"], "不客气！如果还有其他问题，随时问我。"),
           (["再见", "拜拜", "没有了，再见。"], "再见，祝您愉快！"),
           (["你好吗？", "最近怎么样？", "今天过得好吗？"], "我很好，谢谢！请问有什么关于订单或商店的问题可以帮您？"),
           (["你是谁？", "你是机器人吗？", "你是真人吗？"],
            "我是 Sluice 演示商店的智能客服，根据帮助中心的内容回答问题，也可以帮您查询订单；其他问题可以联系我们的客服团队。"),
           (["你能做什么？", "你可以帮我什么？"],
            "我可以回答配送、退货、退款、付款、保修、会员、展厅和商品方面的问题，也可以根据订单号查询订单。请问您想了解什么？")],
}
ASK_NUMBER = {
    "en": (["Where is my order?", "Has my order shipped?", "Can you check my order status?",
            "When will my parcel arrive?", "I want to track my package.", "My order hasn't arrived yet."],
           "I can check that for you. What is your order number? You'll find it in your confirmation email, for "
           "example A1001."),
    "zh": (["我的订单到哪了？", "我的订单发货了吗？", "帮我查一下订单状态。", "我的包裹什么时候到？", "我的快递还没到。"],
           "我可以帮您查询。请提供您的订单号，可以在确认邮件里找到，格式类似 A1001。"),
}


def order_question(rng, lang, order_id):
    if lang == "en":
        q = rng.choice(["Where is my order %s?", "What's the status of order %s?", "Can you check order %s for me?",
                        "Has my order %s shipped yet?", "Track order %s please.", "Any news on my order %s?",
                        "When will order %s arrive?", "Order %s: where is it?", "my parcel %s hasn't arrived",
                        "Is %s delivered?", "status of %s", "I ordered %s last week, where is it?",
                        "Can you look up %s?", "What happened to order %s?"]) % order_id
        return en_noise(rng, q) if rng.random() < 0.5 else q
    q = rng.choice(["我的订单%s到哪了？", "帮我查一下订单 %s", "订单%s发货了吗？", "查询订单 %s 的状态。",
                    "我的订单 %s 什么时候到？", "订单号 %s，帮我看看。", "%s到哪了", "帮我查下%s的物流",
                    "我的order %s怎么还没到？", "%s 这个订单发货没", "请查一下 %s"]) % order_id
    return zh_noise(rng, q) if rng.random() < 0.5 else q


def random_order_id(rng, any_letter=0.4):
    """Orders of the demo database and, as often, numbers of any letter and
    length (B7777, c1234, A0001, Z123456789) that it does not hold: the
    model must copy what the user wrote, not the number it saw most.
    `any_letter`: the share of numbers of any letter (the rest starts with A:
    three in four of them the database's)."""
    r = rng.random()
    if r < 0.75 * (1 - any_letter):
        n = "A%d" % rng.randint(1001, 1300)
    elif r < 1 - any_letter:
        n = "A" + "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 9)))
    else:
        n = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "".join(rng.choice("0123456789")
                                                              for _ in range(rng.randint(3, 9)))
    return n.lower() if rng.random() < 0.1 else n


def order_calls(rng, lang, db, order_id):
    """The assistant's call, the tool's result and the answer."""
    call_id = "call_%012x" % rng.getrandbits(48)
    args = json.dumps({"order_id": order_id}, ensure_ascii=False, separators=(",", ":"))
    info, result = lookup(db, order_id)
    if info is not None:
        info = dict(info, id=order_id)
    return [{"role": "assistant", "content": "", "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": "lookup_order", "arguments": args}}]},
            {"role": "tool", "tool_call_id": call_id, "content": result},
            {"role": "assistant", "content": order_answer(lang, order_id, info)}]


# ------------------------------------------------------------------ dialogues

class Builder:
    """Makes the samples: a plan of turns first (questions and what answers
    them), then one retrieval pass for every user turn, then the samples."""

    def __init__(self, rng, retriever, db):
        self.rng, self.retriever, self.db = rng, retriever, db
        self.passages = retriever.passages()
        self.by_lang = {"en": [p for p in self.passages if p["lang"] == "en"],
                        "zh": [p for p in self.passages if p["lang"] == "zh"]}
        self.by_id = {p["id"]: p for p in self.passages}
        self.salience = Salience(self.passages)

    def twin(self, p):
        other = ("zh/" if p["lang"] == "en" else "en/") + p["id"].split("/", 1)[1]
        return self.by_id.get(other)

    def kb_turn(self, lang, context=None, same_doc_as=None):
        pool = self.by_lang[lang]
        if same_doc_as is not None:
            pool = [p for p in pool if p["id"].split("#")[0] == same_doc_as["id"].split("#")[0] and p is not same_doc_as] or pool
            p = self.rng.choice(pool)
            return {"kind": "kb", "lang": lang, "q": followup_question(self.rng, p, self.salience), "target": p,
                    "context": context}
        p = self.rng.choice(pool)
        return {"kind": "kb", "lang": lang, "q": kb_question(self.rng, p, self.salience, self.twin(p)), "target": p,
                "context": context}

    def plan(self, order_share, any_letter=0.4):
        """One conversation: a list of turns."""
        rng = self.rng
        lang = "en" if rng.random() < 0.5 else "zh"
        turns = []
        for k in range(rng.choice([1, 1, 1, 2, 2, 3])):
            prev = turns[-1] if turns else None
            context = prev["q"] if prev else None
            r = rng.random()
            if prev and prev["kind"] == "kb" and r < 0.45:
                turns.append(self.kb_turn(lang, context, same_doc_as=prev["target"]))
            elif r < order_share:
                order_id = random_order_id(rng, any_letter)
                if rng.random() < 0.2:
                    qs, a = ASK_NUMBER[lang]
                    turns.append({"kind": "fixed", "lang": lang, "q": rng.choice(qs), "a": a, "context": context})
                    reply = rng.choice(["It's %s.", "%s", "The number is %s.", "Order %s.", "%s, thanks"]) \
                        if lang == "en" else rng.choice(["订单号是%s。", "%s", "是 %s", "%s，谢谢"])
                    turns.append({"kind": "order", "lang": lang, "q": reply % order_id, "order": order_id,
                                  "context": turns[-1]["q"]})
                else:
                    turns.append({"kind": "order", "lang": lang, "q": order_question(rng, lang, order_id),
                                  "order": order_id, "context": context})
            elif r < order_share + 0.07:
                qs, a = OFF_TOPIC[lang]
                turns.append({"kind": "fixed", "lang": lang, "q": rng.choice(qs), "a": a, "context": context})
            elif r < order_share + 0.13:
                turns.append({"kind": "fixed", "lang": lang, "q": rng.choice(NO_ANSWER[lang]), "a": NOT_FOUND[lang],
                              "context": context})
            elif r < order_share + 0.2:
                # A greeting opens most conversations, but thanks, goodbyes and
                # "who are you" can come first too.
                qs, a = rng.choice(SMALLTALK[lang][:1] if k == 0 and rng.random() < 0.5 else SMALLTALK[lang])
                turns.append({"kind": "fixed", "lang": lang, "q": rng.choice(qs), "a": a, "context": context})
            else:
                turns.append(self.kb_turn(lang, context))
        return {"turns": turns, "tools": rng.random() < 0.9}

    def samples(self, count, order_share, any_letter=0.4):
        plans = [self.plan(order_share, any_letter) for _ in range(count)]
        queries = [(t["q"], t["context"]) for pl in plans for t in pl["turns"]]
        found = iter(self.retriever.search(queries))
        out, dropped = [], 0
        for pl in plans:
            history = []  # as the session keeps it: the user's words, the assistant's answers
            results = [next(found) for _ in pl["turns"]]
            for t, passages in zip(pl["turns"], results):
                user = {"role": "user", "content": prompt_with_sources(passages, t["q"])}
                if t["kind"] == "kb":
                    ids = [p["id"] for p in passages]
                    if t["target"]["id"] not in ids:
                        dropped += 1
                        break  # the conversation ends here: its question is not answered by what was found
                    n = ids.index(t["target"]["id"]) + 1
                    reply = [{"role": "assistant", "content": cite(t["lang"], passages[n - 1]["text"], n)}]
                elif t["kind"] == "order":
                    reply = order_calls(self.rng, t["lang"], self.db, t["order"])
                else:
                    reply = [{"role": "assistant", "content": t["a"]}]
                out.append({"messages": history + [user] + reply, "tools": pl["tools"] or t["kind"] == "order",
                            "train_from": len(history) + 1})
                history = history + [{"role": "user", "content": t["q"]}] + reply
        return out, dropped


def generate(count, seed, order_share=0.22, kb_bin=None, folder=None, any_letter=0.4):
    """Samples of `count` conversations (a sample per turn)."""
    rng = random.Random(seed)
    retriever = Retriever(kb_bin or os.path.join(ROOT, "build/release/bin/sluice-kb"),
                          folder or os.path.join(ROOT, "kb/demo-shop"))
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "orders.sqlite")
        orders.build(path, 300)
        db = sqlite3.connect(path)
        samples, dropped = Builder(rng, retriever, db).samples(count, order_share, any_letter)
    print("corpus: %d samples from %d conversations; %d knowledge turns left out (their passage was not retrieved)"
          % (len(samples), count, dropped), file=sys.stderr)
    return samples


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dialogues", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kb-bin", default=os.path.join(ROOT, "build/release/bin/sluice-kb"))
    a = ap.parse_args()
    for d in generate(a.dialogues, a.seed, kb_bin=a.kb_bin):
        print(json.dumps(d, ensure_ascii=False))


if __name__ == "__main__":
    main()
