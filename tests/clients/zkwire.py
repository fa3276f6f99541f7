"""A small synchronous ZooKeeper wire client for tests: every op the protocol has, exact
error codes and reply zxids, and notifications recorded in the order the server sent them
on the socket (so two servers can be compared op for op)."""

import socket
import struct

OPEN_ACL = [(31, "world", "anyone")]

OP = dict(create=1, delete=2, exists=3, getData=4, setData=5, getACL=6, setACL=7,
          getChildren=8, sync=9, ping=11, getChildren2=12, check=13, multi=14, create2=15,
          checkWatches=17, removeWatches=18, createContainer=19, createTTL=21, multiRead=22,
          auth=100, setWatches=101, getEphemerals=103, getAllChildrenNumber=104,
          setWatches2=105, addWatch=106, whoAmI=107, closeSession=-11)


class W:
    def __init__(self):
        self.b = bytearray()

    def i32(self, v):
        self.b += struct.pack(">i", v)
        return self

    def i64(self, v):
        self.b += struct.pack(">q", v)
        return self

    def bool(self, v):
        self.b += b"\x01" if v else b"\x00"
        return self

    def buf(self, v):
        if v is None:
            return self.i32(-1)
        self.i32(len(v))
        self.b += v
        return self

    def str(self, s):
        return self.buf(s.encode())

    def strs(self, l):
        self.i32(len(l))
        for s in l:
            self.str(s)
        return self

    def acl(self, acl):
        self.i32(len(acl))
        for perms, scheme, ident in acl:
            self.i32(perms).str(scheme).str(ident)
        return self


class R:
    def __init__(self, b):
        self.b = b
        self.o = 0

    def i32(self):
        v = struct.unpack_from(">i", self.b, self.o)[0]
        self.o += 4
        return v

    def i64(self):
        v = struct.unpack_from(">q", self.b, self.o)[0]
        self.o += 8
        return v

    def bool(self):
        v = self.b[self.o] != 0
        self.o += 1
        return v

    def buf(self):
        n = self.i32()
        if n < 0:
            return None
        v = bytes(self.b[self.o:self.o + n])
        self.o += n
        return v

    def str(self):
        v = self.buf()
        return None if v is None else v.decode()

    def strs(self):
        return [self.str() for _ in range(self.i32())]

    def stat(self):
        keys = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
                "ephemeralOwner", "dataLength", "numChildren", "pzxid")
        t = [self.i64(), self.i64(), self.i64(), self.i64(), self.i32(), self.i32(), self.i32(),
             self.i64(), self.i32(), self.i32(), self.i64()]
        return dict(zip(keys, t))

    def acl(self):
        return [(self.i32(), self.str(), self.str()) for _ in range(self.i32())]


class ZkError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Wire:
    def __init__(self, host, port, timeout_ms=10000, session_id=0, passwd=b"\0" * 16,
                 last_zxid=0, read_only_byte=True):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.xid = 0
        self.events = []
        self.last_zxid = last_zxid
        w = W().i32(0).i64(last_zxid).i32(timeout_ms).i64(session_id).buf(passwd)
        if read_only_byte:
            w.bool(False)
        self._send(bytes(w.b))
        r = R(self._recv())
        self.protocol = r.i32()
        self.timeout = r.i32()
        self.session_id = r.i64()
        self.passwd = r.buf()

    def _send(self, body):
        self.sock.sendall(struct.pack(">i", len(body)) + body)

    def _recvn(self, n):
        out = b""
        while len(out) < n:
            d = self.sock.recv(n - len(out))
            if not d:
                raise ConnectionError("server closed the connection")
            out += d
        return out

    def _recv(self):
        n = struct.unpack(">i", self._recvn(4))[0]
        return self._recvn(n)

    def call(self, op, body=b"", xid=None):
        """Sends a request; returns (err, zxid, reader). Notifications met on the way are
        appended to self.events as (type, path)."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        self._send(struct.pack(">ii", xid, OP[op] if isinstance(op, str) else op) + body)
        while True:
            r = R(self._recv())
            rx, zxid, err = r.i32(), r.i64(), r.i32()
            if rx == -1:
                etype, _state, path = r.i32(), r.i32(), r.str()
                self.events.append((etype, path))
                continue
            if zxid > 0:
                self.last_zxid = zxid
            assert rx == xid, (rx, xid)
            return err, zxid, r

    def ok(self, op, body=b""):
        err, _zxid, r = self.call(op, body)
        if err:
            raise ZkError(err)
        return r

    # --- operations; each returns the decoded result or raises ZkError(code)
    def create(self, path, data=b"", acl=OPEN_ACL, flags=0, op="create", ttl=None):
        w = W().str(path).buf(data).acl(acl).i32(flags)
        if op == "createTTL":
            w.i64(ttl)
        r = self.ok(op, bytes(w.b))
        p = r.str()
        return p if op == "create" else (p, r.stat())

    def delete(self, path, version=-1):
        self.ok("delete", bytes(W().str(path).i32(version).b))

    def exists(self, path, watch=False):
        err, _, r = self.call("exists", bytes(W().str(path).bool(watch).b))
        if err == -101:
            return None
        if err:
            raise ZkError(err)
        return r.stat()

    def get(self, path, watch=False):
        r = self.ok("getData", bytes(W().str(path).bool(watch).b))
        return r.buf(), r.stat()

    def set(self, path, data, version=-1):
        return self.ok("setData", bytes(W().str(path).buf(data).i32(version).b)).stat()

    def children(self, path, watch=False, stat=False):
        r = self.ok("getChildren2" if stat else "getChildren", bytes(W().str(path).bool(watch).b))
        kids = sorted(r.strs())
        return (kids, r.stat()) if stat else kids

    def get_acl(self, path):
        r = self.ok("getACL", bytes(W().str(path).b))
        return r.acl(), r.stat()

    def set_acl(self, path, acl, version=-1):
        return self.ok("setACL", bytes(W().str(path).acl(acl).i32(version).b)).stat()

    def sync(self, path="/"):
        return self.ok("sync", bytes(W().str(path).b)).str()

    def ping(self):
        err, _, _ = self.call("ping", xid=-2)
        return err

    def multi(self, ops):
        """ops: list of ("create", path, data, flags) | ("delete", path, version) |
        ("set", path, data, version) | ("check", path, version). Returns per-op results,
        errors as ("err", code)."""
        w = W()
        for o in ops:
            kind = o[0]
            if kind == "create":
                w.i32(1).bool(False).i32(-1).str(o[1]).buf(o[2]).acl(OPEN_ACL).i32(o[3])
            elif kind == "delete":
                w.i32(2).bool(False).i32(-1).str(o[1]).i32(o[2])
            elif kind == "set":
                w.i32(5).bool(False).i32(-1).str(o[1]).buf(o[2]).i32(o[3])
            elif kind == "check":
                w.i32(13).bool(False).i32(-1).str(o[1]).i32(o[2])
        w.i32(-1).bool(True).i32(-1)
        r = self.ok("multi", bytes(w.b))
        out = []
        while True:
            t, done, err = r.i32(), r.bool(), r.i32()
            if done:
                return out
            if t == 1:
                out.append(("create", r.str()))
            elif t == 2:
                out.append(("delete",))
            elif t == 5:
                out.append(("set", r.stat()))
            elif t == 13:
                out.append(("check",))
            elif t == -1:
                out.append(("err", r.i32()))

    def multi_read(self, ops):
        w = W()
        for kind, path in ops:
            w.i32(4 if kind == "get" else 8).bool(False).i32(-1).str(path).bool(False)
        w.i32(-1).bool(True).i32(-1)
        r = self.ok("multiRead", bytes(w.b))
        out = []
        while True:
            t, done, err = r.i32(), r.bool(), r.i32()
            if done:
                return out
            if t == 4:
                out.append(("get", r.buf(), r.stat()))
            elif t == 8:
                out.append(("children", sorted(r.strs())))
            else:
                out.append(("err", r.i32()))

    def add_watch(self, path, mode):
        self.ok("addWatch", bytes(W().str(path).i32(mode).b))

    def remove_watches(self, path, wtype):
        self.ok("removeWatches", bytes(W().str(path).i32(wtype).b))

    def check_watches(self, path, wtype):
        self.ok("checkWatches", bytes(W().str(path).i32(wtype).b))

    def all_children_number(self, path):
        return self.ok("getAllChildrenNumber", bytes(W().str(path).b)).i32()

    def ephemerals(self, prefix="/"):
        return sorted(self.ok("getEphemerals", bytes(W().str(prefix).b)).strs())

    def whoami(self):
        r = self.ok("whoAmI")
        return [(r.str(), r.str()) for _ in range(r.i32())]

    def auth(self, scheme, cred):
        err, _, _ = self.call("auth", bytes(W().i32(0).str(scheme).buf(cred).b), xid=-4)
        return err

    def set_watches(self, rel_zxid, data=(), exist=(), child=(), persistent=None, recursive=None):
        w = W().i64(rel_zxid).strs(list(data)).strs(list(exist)).strs(list(child))
        op = "setWatches"
        if persistent is not None or recursive is not None:
            op = "setWatches2"
            w.strs(list(persistent or [])).strs(list(recursive or []))
        err, _, _ = self.call(op, bytes(w.b), xid=-8)
        return err

    def close(self):
        try:
            self.call("closeSession")
        except (ConnectionError, OSError):
            pass
        self.sock.close()

    def drop(self):
        """Closes the socket without ending the session."""
        self.sock.close()
