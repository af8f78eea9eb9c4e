#!/usr/bin/env python3
"""Creates the demo orders database used by the order_lookup plugin.

Usage: tools/make_demo_orders.py OUT.sqlite [--orders N]

Deterministic (a fixed seed): the same command always writes the same
orders, A1001 upwards. The catalogue below is also what the demo model's
customer-service corpus talks about.
"""
import argparse
import datetime
import os
import random
import sqlite3

# sku, English name, Chinese name, price in cents (USD)
CATALOGUE = [
    ("TEA-001", "Jasmine green tea, 100 g", "茉莉花茶 100克", 1290),
    ("TEA-002", "Aged pu-erh cake, 357 g", "陈年普洱茶饼 357克", 4800),
    ("MUG-010", "Celadon tea mug", "青瓷茶杯", 2450),
    ("POT-020", "Yixing clay teapot", "宜兴紫砂壶", 8900),
    ("KET-030", "Electric gooseneck kettle", "电热细口壶", 6990),
    ("BAG-040", "Canvas tote bag", "帆布手提袋", 1599),
    ("SCF-050", "Silk scarf, blue", "蓝色真丝围巾", 3900),
    ("NBK-060", "Dot-grid notebook", "点阵笔记本", 990),
    ("PEN-070", "Fountain pen, fine nib", "细尖钢笔", 2990),
    ("LMP-080", "Bamboo desk lamp", "竹制台灯", 5400),
    ("HDP-090", "Wireless headphones", "无线耳机", 12900),
    ("CHG-100", "USB-C charger, 65 W", "65W USB-C 充电器", 3499),
]
STATUSES = ["processing", "shipped", "in_transit", "delivered", "delivered", "returned", "cancelled"]
CITIES = [("Shanghai", "上海"), ("Hangzhou", "杭州"), ("Shenzhen", "深圳"), ("Singapore", "新加坡"),
          ("Los Angeles", "洛杉矶"), ("Chicago", "芝加哥"), ("Rotterdam", "鹿特丹")]
CUSTOMERS = ["Li Na", "王伟", "Zhang Wei", "陈静", "Emma Brown", "Liu Yang", "Sofia Rossi", "刘洋",
             "James Smith", "赵敏"]
CARRIERS = ["SF Express", "China Post EMS", "DHL", "UPS"]

SCHEMA = """
CREATE TABLE products (sku TEXT PRIMARY KEY, name_en TEXT NOT NULL, name_zh TEXT NOT NULL,
                       price_cents INTEGER NOT NULL);
CREATE TABLE orders (id TEXT PRIMARY KEY, customer TEXT NOT NULL, status TEXT NOT NULL,
                     placed_at TEXT NOT NULL, currency TEXT NOT NULL, total_cents INTEGER NOT NULL,
                     carrier TEXT, tracking TEXT);
CREATE TABLE order_items (order_id TEXT NOT NULL REFERENCES orders(id), sku TEXT NOT NULL
                          REFERENCES products(sku), quantity INTEGER NOT NULL,
                          price_cents INTEGER NOT NULL);
CREATE TABLE shipping_events (order_id TEXT NOT NULL REFERENCES orders(id), at TEXT NOT NULL,
                              location TEXT NOT NULL, description TEXT NOT NULL);
CREATE INDEX order_items_by_order ON order_items(order_id);
CREATE INDEX shipping_events_by_order ON shipping_events(order_id);
"""


def build(path, count):
    if os.path.exists(path):
        os.remove(path)
    rng = random.Random(20261121)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", CATALOGUE)
    start = datetime.datetime(2026, 9, 1, 9, 0)
    for n in range(count):
        order_id = "A%d" % (1001 + n)
        # A1001 is shipped and A1002 delivered, for the docs and the demo.
        status = {0: "shipped", 1: "delivered"}.get(n, rng.choice(STATUSES))
        placed = start + datetime.timedelta(hours=7 * n + rng.randint(0, 6))
        items = rng.sample(CATALOGUE, rng.randint(1, 3))
        total = 0
        rows = []
        for sku, _, _, price in items:
            qty = rng.randint(1, 3)
            total += qty * price
            rows.append((order_id, sku, qty, price))
        shipped = status not in ("processing", "cancelled")
        carrier = rng.choice(CARRIERS) if shipped else None
        tracking = "%s%09d" % (carrier[:2].upper(), rng.randint(0, 999999999)) if shipped else None
        db.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (order_id, rng.choice(CUSTOMERS), status, placed.isoformat(timespec="minutes"),
                    "USD", total, carrier, tracking))
        db.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?)", rows)
        events = [(placed, "Order placed", CITIES[0])]
        if shipped:
            route = rng.sample(CITIES, 3)
            steps = ["Picked up by " + carrier, "In transit", "Arrived at sorting centre"]
            if status in ("delivered", "returned"):
                steps.append("Delivered")
            if status == "returned":
                steps.append("Returned to sender")
            at = placed + datetime.timedelta(hours=20)
            for i, step in enumerate(steps):
                events.append((at, step, route[min(i, len(route) - 1)]))
                at += datetime.timedelta(hours=rng.randint(10, 40))
        for at, description, (city_en, city_zh) in events:
            db.execute("INSERT INTO shipping_events VALUES (?, ?, ?, ?)",
                       (order_id, at.isoformat(timespec="minutes"), "%s %s" % (city_en, city_zh),
                        description))
    db.commit()
    db.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--orders", type=int, default=300)
    args = parser.parse_args()
    build(args.out, args.orders)
    print("wrote %d orders to %s" % (args.orders, args.out))


if __name__ == "__main__":
    main()
