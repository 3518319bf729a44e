"""WAL frames per statistics event for a child-key layout of the SQLite schema, with Python's sqlite3.

Replays the benchmark's mix (a call: POST with two forked devices, two ringing and two terminating device
updates, the end; a message: POST with two recipient devices, three device responses) over 64 interleaved
lifecycles, committed in batches, after a preload; prints the WAL bytes and frames written per event.

    python3 benches/wal_frames.py hex [preload]   # children keyed by the parent's 64-hex id (schema before 0040)
    python3 benches/wal_frames.py dev [preload]   # only the device tables keyed by the parent's rowid
    python3 benches/wal_frames.py ref [preload]   # every child table keyed by the parent's rowid (0040)
    BATCH=32 python3 benches/wal_frames.py ref    # events per commit (default 8)

The CPU figure includes Python's own overhead: compare it between layouts only.
"""
import os, random, sqlite3, sys, tempfile, time

mode = sys.argv[1]
assert mode in ("hex", "dev", "ref"), "layout: hex, dev or ref"
path = os.path.join(tempfile.mkdtemp(), f"{mode}.db")
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL"); db.execute("PRAGMA wal_autocheckpoint=0"); db.execute("PRAGMA cache_size=-32768")
schema = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schema", "sqlite", "0020_statistics.sql")).read()
schema = schema[:schema.index("CREATE TRIGGER")]
if mode == 'dev':
    schema = schema.replace("    call_id VARCHAR(64) NOT NULL REFERENCES statistics_calls(id) ON DELETE CASCADE,\n    device_id TEXT NOT NULL,\n    rang_at", "    call_ref INTEGER NOT NULL,\n    device_id TEXT NOT NULL,\n    rang_at")
    schema = schema.replace("UNIQUE (call_id, device_id)", "UNIQUE (call_ref, device_id)")
    schema = schema.replace("    message_id VARCHAR(64) NOT NULL REFERENCES statistics_messages(id) ON DELETE CASCADE,\n    to_username TEXT NOT NULL,\n    to_domain TEXT NOT NULL,\n    device_id TEXT NOT NULL,\n    last_status INTEGER NOT NULL", "    message_ref INTEGER NOT NULL,\n    to_username TEXT NOT NULL,\n    to_domain TEXT NOT NULL,\n    device_id TEXT NOT NULL,\n    last_status INTEGER NOT NULL")
    schema = schema.replace("UNIQUE (message_id, to_username","UNIQUE (message_ref, to_username")
if mode == 'ref':
    schema = schema.replace("call_id VARCHAR(64) NOT NULL REFERENCES statistics_calls(id) ON DELETE CASCADE", "call_ref INTEGER NOT NULL")
    schema = schema.replace("message_id VARCHAR(64) NOT NULL REFERENCES statistics_messages(id) ON DELETE CASCADE", "message_ref INTEGER NOT NULL")
    schema = schema.replace("UNIQUE (call_id, device_id)", "UNIQUE (call_ref, device_id)").replace("PRIMARY KEY (call_id, device_id)", "PRIMARY KEY (call_ref, device_id)")
    schema = schema.replace("UNIQUE (message_id, to_username","UNIQUE (message_ref, to_username").replace("PRIMARY KEY (message_id, to_username","PRIMARY KEY (message_ref, to_username")
db.executescript(schema)
PF = "call_ref" if mode == 'ref' else "call_id"
PD = "call_id" if mode == 'hex' else "call_ref"
MR = "message_ref" if mode == 'ref' else "message_id"
MD = "message_id" if mode == 'hex' else "message_ref"
def hx(): return '%064x' % random.getrandbits(256)
def dev(): return '"<urn:uuid:%s>"' % ('%032x' % random.getrandbits(128))
now = "2026-12-03 18:00:00"
def lifecycle():
    c, m = hx(), hx(); d1, d2 = dev(), dev(); r1, r2 = dev(), dev()
    steps = []
    def call_post(cur):
        cur.execute("INSERT INTO statistics_calls (id, from_username, from_domain, to_username, to_domain, initiated_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)", (c,"alice","sip.example.org","bob","sip.example.org",now,now,now))
        ref = cur.lastrowid if mode=='ref' else c
        for d in (d1,d2): cur.execute(f"INSERT INTO statistics_call_forked_devices ({PF}, device_id, state) VALUES (?,?,NULL)", (ref,d))
    steps.append(call_post)
    def call_dev(d, term):
        def f(cur):
            row = cur.execute("SELECT rowid FROM statistics_calls WHERE id=?", (c,)).fetchone()
            ref = c if mode=='hex' else row[0]
            ex = cur.execute(f"SELECT id FROM statistics_call_devices WHERE {PD}=? AND device_id=?", (ref,d)).fetchone()
            if ex: cur.execute("UPDATE statistics_call_devices SET invite_terminated_at=?, invite_terminated_state='accepted', updated_at=? WHERE id=?", (now,now,ex[0]))
            else: cur.execute(f"INSERT INTO statistics_call_devices ({PD}, device_id, rang_at, created_at, updated_at) VALUES (?,?,?,?,?)", (ref,d,now,now,now))
        return f
    steps += [call_dev(d1,0), call_dev(d2,0), call_dev(d1,1), call_dev(d2,1)]
    steps.append(lambda cur: cur.execute("UPDATE statistics_calls SET ended_at=?, updated_at=? WHERE id=?", (now,now,c)))
    def msg_post(cur):
        cur.execute("INSERT INTO statistics_messages (id, from_username, from_domain, sent_at, created_at, updated_at) VALUES (?,?,?,?,?,?)", (m,"alice","sip.example.org",now,now,now))
        ref = cur.lastrowid if mode=='ref' else m
        for d in (r1,r2): cur.execute(f"INSERT INTO statistics_message_recipients ({MR}, to_username, to_domain, device_id) VALUES (?,?,?,?)", (ref,"bob","sip.example.org",d))
    steps.append(msg_post)
    def msg_dev(d):
        def f(cur):
            row = cur.execute("SELECT rowid FROM statistics_messages WHERE id=?", (m,)).fetchone()
            ref = m if mode=='hex' else row[0]
            ex = cur.execute(f"SELECT id FROM statistics_message_devices WHERE {MD}=? AND to_username='bob' AND to_domain='sip.example.org' AND device_id=?", (ref,d)).fetchone()
            if ex: cur.execute("UPDATE statistics_message_devices SET last_status=200, updated_at=? WHERE id=?", (now,ex[0]))
            else: cur.execute(f"INSERT INTO statistics_message_devices ({MD}, to_username, to_domain, device_id, last_status, received_at, created_at, updated_at) VALUES (?,?,?,?,200,?,?,?)", (ref,"bob","sip.example.org",d,now,now,now))
        return f
    steps += [msg_dev(r1), msg_dev(r2), msg_dev(r1)]
    return steps
def run(n_lifecycles, conns=64, batch=8):
    live = [iter(lifecycle()) for _ in range(conns)]; done = 0; events = 0; pending = []
    cur = db.cursor()
    while done < n_lifecycles:
        for i in range(conns):
            try: pending.append(next(live[i]))
            except StopIteration:
                live[i] = iter(lifecycle()); done += 1
                pending.append(next(live[i]))
            if len(pending) == batch:
                cur.execute("BEGIN IMMEDIATE")
                for f in pending: f(cur)
                cur.execute("COMMIT"); events += len(pending); pending = []
    return events
random.seed(1)
run(int(sys.argv[2]) if len(sys.argv) > 2 else 20000)   # preload
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
t = time.process_time()
ev = run(5000, batch=int(os.environ.get("BATCH","8")))
cpu = time.process_time() - t
wal = os.path.getsize(path+"-wal")
print(f"{mode}: {ev} events, WAL {wal/ev:.0f} bytes/event ({wal/4120/ev:.2f} frames/event), {cpu/ev*1e6:.1f} us CPU/event (python incl.)")
