#!/usr/bin/env python3
"""The demo model's training corpus: customer-service dialogues of the demo
shop in English and Chinese (returns, shipping, payments, refunds, order
status and more), built from the catalogue and the orders of the
order-lookup demo database (tools/make_demo_orders.py).

Order questions are answered the way the gateway's tool loop runs them: the
assistant calls lookup_order, the next user turn holds the plugin's result
(the same JSON the order_lookup plugin writes, read from the same SQLite
file), and the assistant answers from it.

Each dialogue is {"messages": [...], "tools": bool}: messages in the OpenAI
shape (role, content, tool_calls, tool_call_id); tools says whether the
lookup_order tool is offered (it is whenever the plugin is loaded).

Usage: corpus.py [--dialogues N] [--seed S] > corpus.jsonl"""
import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import make_demo_orders as orders  # noqa: E402

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

def en_variants(rng, text):
    """Small surface changes real users make."""
    r = rng.random()
    if r < 0.15:
        text = text.lower()
    elif r < 0.25:
        text = text.rstrip("?.!")
    p = rng.random()
    if p < 0.12:
        text = "Hi, " + text[0].lower() + text[1:]
    elif p < 0.2:
        text = "Hello! " + text
    elif p < 0.25:
        text = text.rstrip("?.!") + ", please?"
    return text


def zh_variants(rng, text):
    p = rng.random()
    if p < 0.15:
        text = "你好，" + text
    elif p < 0.25:
        text = "请问" + text
    elif p < 0.32:
        text = text.rstrip("？。！") 
    return text


def topic_returns(rng, lang, cat):
    sku, name, name_zh, cents = rng.choice(cat)
    if lang == "en":
        short = name.split(",")[0]
        q = rng.choice(["How do I return an item?", "How can I return the %s?" % short.lower(),
                        "I want to return my %s." % short.lower(), "What is your return policy?",
                        "Can I send back something I bought?", "How do returns work?",
                        "I'd like to return an order.", "Can I return the %s I bought last week?" % short.lower(),
                        "How do I return an item?", "How do I send an item back?"])
        a = ("You can return any item within 30 days of delivery. Open My Orders, choose the order and select "
             "\"Return an item\"; we will email you a prepaid return label. Pack the item in its original "
             "packaging and drop it off at any SF Express or China Post point. Your refund goes back to your original "
             "payment method within 5 business days after the item reaches our warehouse.")
        return en_variants(rng, q), a
    q = rng.choice(["怎么退货？", "我想退掉%s。" % name_zh, "你们的退货政策是什么？", "%s可以退吗？" % name_zh,
                    "如何申请退货？", "买的东西不想要了，能退吗？", "退货流程是怎样的？", "怎么退货？"])
    a = ("您可以在收货后30天内申请退货。请打开“我的订单”，选择相应订单并点击“申请退货”，我们会通过邮件发送预付退货面单。"
         "请用原包装将商品寄回，交给任意顺丰或邮政网点即可。仓库收到商品后，退款会在5个工作日内退回您的原支付方式。")
    return zh_variants(rng, q), a


def topic_shipping(rng, lang, cat):
    city, city_zh = rng.choice(orders.CITIES)
    to_city = rng.random() < 0.35
    if lang == "en":
        if to_city:
            q = rng.choice(["Do you ship to %s?", "How fast is delivery to %s?", "Can you deliver to %s?"]) % city
            a = "Yes, we ship to %s. " % city
        else:
            q = rng.choice(["How long does shipping take?", "How much is shipping?", "What are your shipping options?",
                            "Is shipping free?", "Which carriers do you use?", "How long does delivery take?"])
            a = ""
        a += ("Standard shipping takes 3 to 5 business days within mainland China and 7 to 12 business days to "
              "other countries. Orders over $49 ship free; otherwise standard shipping costs $5.90. Express "
              "delivery with SF Express or DHL takes 1 to 3 business days for $15.")
        return en_variants(rng, q), a
    if to_city:
        q = rng.choice(["能寄到%s吗？", "寄到%s要几天？", "可以送到%s吗？"]) % city_zh
        a = "可以，我们能寄到%s。" % city_zh
    else:
        q = rng.choice(["运费多少？", "发货要多久？", "包邮吗？", "配送需要几天？", "你们用哪家快递？"])
        a = ""
    a += ("标准配送在中国大陆需要3到5个工作日，寄往其他国家需要7到12个工作日。"
          "订单满49美元包邮，否则标准运费为5.90美元。选择顺丰速运或DHL加急配送，1到3个工作日送达，费用15美元。")
    return zh_variants(rng, q), a


def topic_payment(rng, lang, cat):
    if lang == "en":
        q = rng.choice(["What payment methods do you accept?", "Can I pay with Alipay?", "Do you take PayPal?",
                        "My payment failed, what should I do?", "Is it safe to pay with my card?",
                        "Can I pay with WeChat Pay?", "Which cards can I use?"])
        a = ("We accept Visa, Mastercard, American Express, PayPal, Alipay and WeChat Pay. Payments go over an "
             "encrypted connection and we never store your full card number. If a payment fails, check the card "
             "details and your bank's limit, then try again or choose another method.")
        return en_variants(rng, q), a
    q = rng.choice(["支持哪些付款方式？", "可以用支付宝吗？", "能用微信支付吗？", "付款失败了怎么办？",
                    "用信用卡付款安全吗？", "可以用PayPal付款吗？"])
    a = ("我们支持Visa、万事达卡、美国运通、PayPal、支付宝和微信支付。所有付款都通过加密连接处理，我们不会保存您的完整卡号。"
         "如果付款失败，请检查卡片信息和银行限额，然后重试或换一种付款方式。")
    return zh_variants(rng, q), a


def topic_refund(rng, lang, cat):
    if lang == "en":
        q = rng.choice(["When will I get my refund?", "How long does a refund take?", "Where is my refund?",
                        "I returned an item but have no refund yet."])
        a = ("Refunds are issued within 5 business days after your return reaches our warehouse. Card and PayPal "
             "refunds then take 3 to 7 days to appear, depending on your bank; Alipay and WeChat Pay refunds "
             "usually arrive within a day. We email you as soon as the refund is sent.")
        return en_variants(rng, q), a
    q = rng.choice(["退款多久到账？", "我的退款什么时候到？", "退货后多久能退款？", "退了货还没收到退款。"])
    a = ("仓库收到退货后，我们会在5个工作日内发起退款。银行卡和PayPal退款通常需要3到7天到账，具体取决于您的银行；"
         "支付宝和微信支付一般在一天内到账。退款发出后我们会邮件通知您。")
    return zh_variants(rng, q), a


def topic_cancel(rng, lang, cat):
    if lang == "en":
        q = rng.choice(["How do I cancel my order?", "Can I cancel an order?", "I want to cancel my order.",
                        "I ordered by mistake, can I cancel?"])
        a = ("You can cancel an order while it is still processing: open My Orders and choose \"Cancel order\", "
             "and the full amount is refunded at once. If it has already shipped, refuse the delivery or return "
             "it within 30 days for a full refund.")
        return en_variants(rng, q), a
    q = rng.choice(["怎么取消订单？", "订单可以取消吗？", "我想取消订单。", "下错单了，能取消吗？"])
    a = ("订单在处理中时可以取消：打开“我的订单”，点击“取消订单”，全部款项会立即退回。"
         "如果已经发货，您可以拒收，或在30天内退货并获得全额退款。")
    return zh_variants(rng, q), a


def topic_damaged(rng, lang, cat):
    sku, name, name_zh, cents = rng.choice(cat)
    if lang == "en":
        short = name.split(",")[0].lower()
        q = rng.choice(["My %s arrived damaged." % short, "The %s I received is broken." % short,
                        "I got a damaged item.", "Something in my parcel was broken."])
        a = ("I'm sorry to hear that! Please send a photo of the item and its packaging to support@sluice.example "
             "within 7 days of delivery. We will send a replacement or a full refund, whichever you prefer, at no "
             "cost to you.")
        return en_variants(rng, q), a
    q = rng.choice(["收到的%s坏了。" % name_zh, "商品到货时已经破损。", "包裹里的东西坏了怎么办？"])
    a = "非常抱歉！请在收货后7天内把商品和包装的照片发送到 support@sluice.example，我们会按您的选择免费补发或全额退款。"
    return zh_variants(rng, q), a


def topic_price(rng, lang, cat):
    sku, name, name_zh, cents = rng.choice(cat)
    if lang == "en":
        q = rng.choice(["How much is the %s?" % name.split(",")[0].lower(), "What does the %s cost?" % name.split(",")[0].lower(),
                        "Do you sell %s?" % name.split(",")[0].lower()])
        a = "Yes, we sell the %s (item %s). It costs %s, and it is in stock." % (name, sku, price(cents))
        return en_variants(rng, q), a
    q = rng.choice(["%s多少钱？" % name_zh, "你们卖%s吗？" % name_zh, "%s的价格是多少？" % name_zh])
    a = "有的，%s（商品编号 %s）售价 %s，目前有货。" % (name_zh, sku, price(cents))
    return zh_variants(rng, q), a


def topic_catalogue(rng, lang, cat):
    if lang == "en":
        q = rng.choice(["What do you sell?", "What products do you have?", "Show me your catalogue."])
        names = ", ".join(c[1].split(",")[0].lower() for c in cat[:6])
        a = "We sell tea and tea ware, stationery and a few gadgets: %s, and more. Ask me about any of them!" % names
        return en_variants(rng, q), a
    q = rng.choice(["你们卖什么？", "有哪些商品？", "店里都有什么？"])
    names = "、".join(c[2] for c in cat[:6])
    a = "我们销售茶叶和茶具、文具以及一些数码配件：%s等。欢迎随时问我！" % names
    return zh_variants(rng, q), a


def topic_greeting(rng, lang, cat):
    if lang == "en":
        q = rng.choice(["Hi", "Hello", "Hello!", "Hi there", "Good morning", "Hey"])
        a = ("Hello! I'm the assistant of the Sluice demo shop. I can help with your orders, shipping, returns "
             "and payments. What can I do for you?")
        return q, a
    q = rng.choice(["你好", "您好", "你好！", "嗨", "早上好"])
    a = "您好！我是 Sluice 演示商店的客服助手，可以帮您查询订单、配送、退货和付款。请问有什么可以帮您？"
    return q, a


def topic_thanks(rng, lang, cat):
    if lang == "en":
        q = rng.choice(["Thanks!", "Thank you", "Thank you, that helps.", "Great, thanks.", "Bye"])
        a = "You're welcome! If there is anything else, just ask. Have a nice day!"
        return q, a
    q = rng.choice(["谢谢！", "谢谢你", "好的，谢谢。", "再见"])
    a = "不客气！如果还有其他问题，随时问我。祝您愉快！"
    return q, a


def topic_human(rng, lang, cat):
    if lang == "en":
        q = rng.choice(["Can I talk to a person?", "How do I contact support?", "What is your phone number?",
                        "I want to speak to a human."])
        a = ("Our support team is available from 9:00 to 18:00 (UTC+8), Monday to Friday. You can email "
             "support@sluice.example or call +86 21 5555 0100, and we usually answer within one business day.")
        return en_variants(rng, q), a
    q = rng.choice(["可以转人工客服吗？", "怎么联系客服？", "客服电话是多少？", "我要找人工。"])
    a = "我们的客服团队在周一至周五 9:00 到 18:00（北京时间）在线。您可以发邮件到 support@sluice.example 或拨打 +86 21 5555 0100，通常一个工作日内回复。"
    return zh_variants(rng, q), a


def topic_address(rng, lang, cat):
    if lang == "en":
        q = rng.choice(["Can I change my delivery address?", "I entered the wrong address.",
                        "How do I update my shipping address?"])
        a = ("You can change the address while the order is still processing: open My Orders, choose the order "
             "and select \"Edit address\". Once it has shipped, please contact the carrier with your tracking "
             "number to redirect the parcel.")
        return en_variants(rng, q), a
    q = rng.choice(["可以修改收货地址吗？", "地址填错了怎么办？", "怎么改配送地址？"])
    a = "订单在处理中时可以修改地址：打开“我的订单”，选择订单并点击“修改地址”。如果已经发货，请凭物流单号联系快递公司改派。"
    return zh_variants(rng, q), a


def topic_off_topic(rng, lang, cat):
    if lang == "en":
        q = rng.choice(["What's the weather like today?", "Tell me a joke.", "Who won the game last night?",
                        "Can you write my homework?", "What is the capital of France?"])
        a = ("I'm sorry, I can only help with questions about the Sluice demo shop: orders, shipping, returns, "
             "refunds and payments.")
        return q, a
    q = rng.choice(["今天天气怎么样？", "给我讲个笑话。", "帮我写作业。", "法国的首都是哪里？"])
    a = "抱歉，我只能回答与 Sluice 演示商店有关的问题：订单、配送、退货、退款和付款。"
    return q, a


def topic_order_no_number(rng, lang, cat):
    if lang == "en":
        q = rng.choice(["Where is my order?", "Has my order shipped?", "Can you check my order status?",
                        "When will my parcel arrive?", "I want to track my package."])
        a = "I can check that for you. What is your order number? It starts with A, like A1001."
        return en_variants(rng, q), a
    q = rng.choice(["我的订单到哪了？", "我的订单发货了吗？", "帮我查一下订单状态。", "我的包裹什么时候到？"])
    a = "我可以帮您查询。请提供您的订单号，格式类似 A1001。"
    return zh_variants(rng, q), a


TOPICS = [(topic_returns, 6), (topic_shipping, 4), (topic_payment, 4), (topic_refund, 3), (topic_cancel, 3),
          (topic_damaged, 2), (topic_price, 3), (topic_catalogue, 1), (topic_greeting, 2), (topic_thanks, 1),
          (topic_human, 2), (topic_address, 2), (topic_off_topic, 2), (topic_order_no_number, 2)]


# ------------------------------------------------------------ order lookups

def lookup(db, order_id):
    """The order_lookup plugin's result JSON for order_id, byte for byte."""
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


def order_question(rng, lang, order_id):
    if lang == "en":
        q = rng.choice(["Where is my order %s?", "What's the status of order %s?", "Can you check order %s for me?",
                        "Has my order %s shipped yet?", "Track order %s please.", "Any news on my order %s?",
                        "When will order %s arrive?", "Order %s: where is it?", "Where is my order %s?"]) % order_id
        return en_variants(rng, q)
    q = rng.choice(["我的订单%s到哪了？", "帮我查一下订单 %s", "订单%s发货了吗？", "查询订单 %s 的状态。",
                    "我的订单 %s 什么时候到？", "订单号 %s，帮我看看。"]) % order_id
    return zh_variants(rng, q)


def random_order_id(rng):
    r = rng.random()
    if r < 0.9:
        return "A%d" % rng.randint(1001, 1300)  # in the demo database
    return "A%d" % rng.choice([rng.randint(1301, 1999), rng.randint(2000, 9999), rng.randint(100, 999)])


def order_turns(rng, lang, db, with_number_first):
    """The messages of one order lookup: question, call, result, answer."""
    order_id = random_order_id(rng)
    msgs = []
    if not with_number_first:
        q, a = topic_order_no_number(rng, lang, None)
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        reply = rng.choice(["It's %s.", "%s", "The number is %s.", "Order %s."]) if lang == "en" else \
            rng.choice(["订单号是%s。", "%s", "是 %s"])
        msgs.append({"role": "user", "content": reply % order_id})
    else:
        msgs.append({"role": "user", "content": order_question(rng, lang, order_id)})
    call_id = "call_%012x" % rng.getrandbits(48)
    args = json.dumps({"order_id": order_id}, ensure_ascii=False, separators=(",", ":"))
    msgs.append({"role": "assistant", "content": "", "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": "lookup_order", "arguments": args}}]})
    info, result = lookup(db, order_id)
    msgs.append({"role": "tool", "tool_call_id": call_id, "content": result})
    msgs.append({"role": "assistant", "content": order_answer(lang, order_id, info)})
    return msgs


def dialogue(rng, db, cat, order_share=0.3):
    lang = "en" if rng.random() < 0.5 else "zh"
    tools = rng.random() < 0.85
    msgs = []
    for turn in range(rng.choice([1, 1, 1, 2, 2, 3])):
        if tools and rng.random() < order_share:
            msgs += order_turns(rng, lang, db, with_number_first=rng.random() < 0.75)
            continue
        topic = rng.choices([t for t, _ in TOPICS], weights=[w for _, w in TOPICS])[0]
        if topic is topic_greeting and turn > 0:
            topic = topic_thanks
        q, a = topic(rng, lang, cat)
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs, "tools": tools}


def generate(count, seed, order_share=0.3):
    """count dialogues; order_share: the chance that an exchange (where the
    tool is offered) is an order lookup."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "orders.sqlite")
        orders.build(path, 300)
        db = sqlite3.connect(path)
        return [dialogue(rng, db, orders.CATALOGUE, order_share) for _ in range(count)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dialogues", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    for d in generate(a.dialogues, a.seed):
        print(json.dumps(d, ensure_ascii=False))


if __name__ == "__main__":
    main()
