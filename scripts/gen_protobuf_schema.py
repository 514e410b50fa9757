#!/usr/bin/env python3
"""Generate src/setpoint/api/protobuf_schema.json, the field table behind the protobuf decoder.

The decoder in setpoint.api.protobuf needs, for every message kubectl may send, the field
numbers, their JSON names, their wire types and whether each one repeats. That comes from
Kubernetes' ``generated.proto`` files (proto2 text): pass them with ``--proto``.

Proto text alone cannot say how Go's JSON encoder would have written a value: whether a
scalar is a pointer (so an explicit zero is meaningful and kept), whether it carries
``omitempty`` (so a zero is dropped), or whether an embedded struct is inlined into its
parent in JSON (``Volume.volumeSource``, ``Probe.handler``). Kubernetes' Go types hold that,
and a Go binary compiled with them keeps the type metadata that ``encoding/json`` reflects
over. ``--go-binary`` reads it from such a binary (kubectl), adds the flags, cross-checks the
proto text against the client that will actually send the bytes, and adds fields that the
proto text lacks (proto files older than the binary). Either source works alone; with both,
the binary wins and every disagreement is reported on stderr.

Output: ``{"_comment": ..., "source": ..., "kinds": {apiVersion: {kind: message}},
"messages": {"<package>.<Message>": {"<field number>": [jsonName, type, repeated, flags]}}}``
where ``type`` is a scalar name (``string``, ``int32``, ``int64``, ``bool``, ``bytes``,
``double``, ...), a package-qualified message name, or ``map:<keytype>:<valuetype>``, and
``flags`` has ``p`` (Go pointer: presence matters, keep zero values), ``e`` (``omitempty``:
drop zero values), ``i`` (inlined into the parent object in JSON), or ``?`` (no Go
information: the decoder falls back to dropping empty values). Only messages reachable from
the served kinds are kept.

Usage::

    python scripts/gen_protobuf_schema.py --proto /tmp/k8s-proto/*.proto \\
        --go-binary .venv/bin/kubectl --k8s-version v1.37.1 \\
        -o src/setpoint/api/protobuf_schema.json

The Go binary reader understands the ELF layout of non-PIE, statically linked amd64 Go
binaries with the Go 1.21+ ``abi.Type`` layout (checked on kubectl v1.37.1, go1.26.8).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

# Messages that are not served kinds but travel as request bodies: a subresource's own kind
# (pods/binding, pods/eviction, .../scale), and meta kinds registered in every group version ("*": a typed
# client encodes DeleteOptions as e.g. "apps/v1").
SUBRESOURCE_AND_META_KINDS: dict[str, dict[str, str]] = {
    "v1": {"Binding": "k8s.io.api.core.v1.Binding"},
    "autoscaling/v1": {"Scale": "k8s.io.api.autoscaling.v1.Scale"},
    "policy/v1": {"Eviction": "k8s.io.api.policy.v1.Eviction"},
    "authentication.k8s.io/v1": {"TokenRequest": "k8s.io.api.authentication.v1.TokenRequest"},
    "*": {k: f"k8s.io.apimachinery.pkg.apis.meta.v1.{k}" for k in ("DeleteOptions", "Status")},
}


def served_kinds() -> dict[str, dict[str, str]]:
    """(apiVersion, kind) -> message: every built-in kind as its declaration names its wire
    schema (JSON-only kinds left out), and the subresource and meta kinds."""
    from setpoint.resources.catalog import KINDS as DECLARED
    from setpoint.resources.registry import JSON_ONLY

    kinds: dict[str, dict[str, str]] = {v: dict(m) for v, m in SUBRESOURCE_AND_META_KINDS.items()}
    for rtype in DECLARED:
        if rtype.protobuf and rtype.protobuf != JSON_ONLY:
            kinds.setdefault(rtype.api_version, {})[rtype.kind] = rtype.protobuf
    return kinds


KINDS = served_kinds()

META = "k8s.io.apimachinery.pkg.apis.meta.v1"
# Messages whose Go types marshal by hand (their Go fields carry no protobuf tags); their
# wire layout is the one in generated.proto.
FIXED: dict[str, dict[int, tuple[str, str]]] = {
    f"{META}.Time": {1: ("seconds", "int64"), 2: ("nanos", "int32")},
    f"{META}.MicroTime": {1: ("seconds", "int64"), 2: ("nanos", "int32")},
    f"{META}.Timestamp": {1: ("seconds", "int64"), 2: ("nanos", "int32")},
    "k8s.io.apimachinery.pkg.api.resource.Quantity": {1: ("string", "string")},
    f"{META}.FieldsV1": {1: ("Raw", "bytes")},
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": {
        1: ("type", "int64"),
        2: ("intVal", "int32"),
        3: ("strVal", "string"),
    },
    "k8s.io.apimachinery.pkg.runtime.RawExtension": {1: ("raw", "bytes")},
}

SCALARS = {
    "double",
    "float",
    "int32",
    "int64",
    "uint32",
    "uint64",
    "sint32",
    "sint64",
    "fixed32",
    "fixed64",
    "sfixed32",
    "sfixed64",
    "bool",
    "string",
    "bytes",
}


@dataclass
class Field:
    name: str
    type: str
    repeated: bool
    flags: str = "?"


@dataclass
class Schema:
    messages: dict[str, dict[int, Field]] = field(default_factory=dict)


# --------------------------------------------------------------------------- proto text


_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_PACKAGE = re.compile(r"\bpackage\s+([\w.]+)\s*;")
_MESSAGE = re.compile(r"\bmessage\s+(\w+)\s*\{")
_FIELD = re.compile(
    r"^\s*(?:(optional|repeated|required)\s+)?"
    r"(map\s*<\s*(\w+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(?:\[[^\]]*\])?\s*;\s*$"
)


def parse_proto(text: str) -> dict[str, dict[int, Field]]:
    """Parse one proto2 file: top-level messages only, as Kubernetes generates them."""
    text = _COMMENT.sub("", text)
    pkg_match = _PACKAGE.search(text)
    if not pkg_match:
        raise ValueError("proto file has no package statement")
    pkg = pkg_match.group(1)
    out: dict[str, dict[int, Field]] = {}
    pos = 0
    while True:
        m = _MESSAGE.search(text, pos)
        if not m:
            break
        depth, i = 1, m.end()
        while depth:
            if i >= len(text):
                raise ValueError(f"unterminated message {m.group(1)}")
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[m.end() : i - 1]
        if "{" in body:
            raise ValueError(f"nested messages/enums are not supported ({m.group(1)})")
        fields: dict[int, Field] = {}
        for stmt in body.split(";"):
            stmt = stmt.strip()
            if not stmt or stmt.startswith(("option ", "reserved ")):
                continue
            fm = _FIELD.match(stmt + ";")
            if not fm:
                raise ValueError(f"cannot parse field in {m.group(1)}: {stmt!r}")
            label, typ, key, val, name, num = fm.groups()
            typ = f"map:{key}:{_qualify(val, pkg)}" if key is not None else _qualify(typ, pkg)
            fields[int(num)] = Field(name, typ, label == "repeated")
        out[f"{pkg}.{m.group(1)}"] = fields
        pos = i
    return out


def _qualify(typ: str, pkg: str) -> str:
    typ = typ.lstrip(".")  # ".k8s.io.api.core.v1.Pod" is fully qualified
    if typ in SCALARS or "." in typ:
        return typ
    return f"{pkg}.{typ}"


# --------------------------------------------------------------------------- Go binary


class GoBinary:
    """Struct types, with field tags and kinds, from a Go ELF binary's type metadata."""

    KIND_NAMES = {
        1: "bool",
        2: "int",
        5: "int32",
        6: "int64",
        7: "uint",
        8: "uint8",
        10: "uint32",
        11: "uint64",
        13: "float32",
        14: "float64",
    }
    PTR, SLICE, MAP, STRUCT, STRING, ARRAY, IFACE = 22, 23, 21, 25, 24, 17, 20

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2:
            raise ValueError("only 64-bit ELF Go binaries are supported")
        shoff = struct.unpack_from("<Q", d, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
        raw = [struct.unpack_from("<IIQQQQ", d, shoff + i * shentsize) for i in range(shnum)]
        strtab = raw[shstrndx][4]
        self.sections: dict[str, tuple[int, int, int]] = {}
        for name_off, _typ, _flags, addr, offset, size in raw:
            name = d[strtab + name_off : d.index(b"\0", strtab + name_off)].decode()
            self.sections[name] = (addr, offset, size)
        self._ranges = [v for v in self.sections.values() if v[0] and v[1]]
        if ".rodata" not in self.sections or ".typelink" not in self.sections:
            raise ValueError(f"{path}: no .rodata/.typelink sections; not a Go ELF binary?")
        self.types_base = self.sections[".rodata"][0]
        addr, _, size = self.sections[".typelink"]
        self.by_name: dict[tuple[str, str], int] = {}
        seen: set[int] = set()
        for k in range(size // 4):
            self._walk(self.types_base + self.i32(addr + 4 * k), seen)
        if not self.by_name:
            raise ValueError("no named struct types found: unsupported Go binary layout")

    def off(self, addr: int) -> int:
        for a, o, s in self._ranges:
            if a <= addr < a + s:
                return addr - a + o
        raise ValueError(f"address {addr:#x} is outside the binary's sections")

    def q(self, addr: int) -> int:
        return int(struct.unpack_from("<Q", self.data, self.off(addr))[0])

    def i32(self, addr: int) -> int:
        return int(struct.unpack_from("<i", self.data, self.off(addr))[0])

    def u8(self, addr: int) -> int:
        return self.data[self.off(addr)]

    def _varint(self, addr: int) -> tuple[int, int]:
        result = shift = 0
        while True:
            b = self.u8(addr)
            addr += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result, addr

    def name(self, addr: int) -> tuple[str, str, int]:
        """Decode an abi.Name: (name, tag, flags)."""
        flags = self.u8(addr)
        n, a = self._varint(addr + 1)
        s = self.data[self.off(a) : self.off(a) + n].decode()
        tag = ""
        if flags & 2:
            tn, a2 = self._varint(a + n)
            tag = self.data[self.off(a2) : self.off(a2) + tn].decode()
        return s, tag, flags

    def kind(self, t: int) -> int:
        return self.u8(t + 23) & 0x1F

    def type_name(self, t: int) -> str:
        s = self.name(self.types_base + self.i32(t + 40))[0]
        return s[1:] if self.u8(t + 20) & 2 else s  # TFlagExtraStar

    def named(self, t: int) -> bool:
        return bool(self.u8(t + 20) & 4)  # TFlagNamed

    def pkg_path(self, t: int) -> str:
        """Package path of a named struct type (from its abi.UncommonType)."""
        if self.kind(t) != self.STRUCT or not self.u8(t + 20) & 1:  # TFlagUncommon
            return ""
        off = self.i32(t + 80)  # the uncommon type follows the 80-byte abi.StructType
        return self.name(self.types_base + off)[0] if off else ""

    def elem(self, t: int) -> int:
        return self.q(t + 48)

    def map_kv(self, t: int) -> tuple[int, int]:
        return self.q(t + 48), self.q(t + 56)

    def fields(self, t: int) -> list[tuple[str, str, int, bool]]:
        """(name, tag, field type, embedded) for a struct type."""
        ptr, n = self.q(t + 56), self.q(t + 64)
        out = []
        for j in range(n):
            name, tag, flags = self.name(self.q(ptr + 24 * j))
            out.append((name, tag, self.q(ptr + 24 * j + 8), bool(flags & 8)))
        return out

    def _walk(self, t: int, seen: set[int]) -> None:
        stack = [t]
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            k = self.kind(t)
            if k in (self.PTR, self.SLICE, self.ARRAY):
                stack.append(self.elem(t))
            elif k == self.MAP:
                stack.extend(self.map_kv(t))
            elif k == self.STRUCT:
                if self.named(t):
                    short = self.type_name(t).rsplit(".", 1)[-1]
                    self.by_name.setdefault((self.pkg_path(t), short), t)
                stack.extend(f[2] for f in self.fields(t))


def _tag(tag: str, key: str) -> str | None:
    m = re.search(rf'(?:^|\s){key}:"([^"]*)"', tag)
    return m.group(1) if m else None


def go_messages(binary: GoBinary, roots: Iterable[str]) -> dict[str, dict[int, Field]]:
    """Walk the Go structs behind the root messages and describe them as proto messages."""
    out: dict[str, dict[int, Field]] = {}
    todo = list(roots)
    while todo:
        msg = todo.pop()
        if msg in out:
            continue
        if msg in FIXED:
            out[msg] = {n: Field(nm, ty, False, "") for n, (nm, ty) in FIXED[msg].items()}
            continue
        pkg, _, short = msg.rpartition(".")
        key = (_go_package(pkg), short)
        if key not in binary.by_name and msg not in NAMED_STRING_SLICES:
            raise ValueError(f"Go type for {msg} not found in the binary")
        if msg in NAMED_STRING_SLICES:  # ``ExtraValue``: one repeated string
            out[msg] = {1: Field("items", "string", True, "")}
            continue
        t = binary.by_name[key]
        fields: dict[int, Field] = {}
        for go_name, tag, ft, embedded in binary.fields(t):
            pb = _tag(tag, "protobuf")
            if not pb or pb == "-":
                continue
            parts = pb.split(",")
            num = int(parts[1])
            opts = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
            proto_name = opts.get("name", go_name[:1].lower() + go_name[1:])
            js = _tag(tag, "json")
            js_parts = (js if js is not None else go_name).split(",")
            json_name = js_parts[0]
            flags = ""
            if "omitempty" in js_parts[1:] or "omitzero" in js_parts[1:]:
                flags += "e"
            if embedded and not json_name:
                flags += "i"
                json_name = proto_name
            if js == "-":
                continue  # not serialised to JSON (hand-marshalled types are in FIXED)
            typ, repeated, pointer = _go_type(binary, ft, parts[0], tag, pkg)
            if pointer:
                flags = "p" + flags
            fields[num] = Field(json_name, typ, repeated, flags)
            for ref in re.findall(r"[\w.]+", typ):
                if ref.startswith("k8s.io."):
                    todo.append(ref)
        out[msg] = fields
    return out


# named ``[]string`` map values met while walking (``authorization/v1.ExtraValue``)
NAMED_STRING_SLICES: set[str] = set()


def _go_package(proto_package: str) -> str:
    """k8s.io.api.core.v1 -> k8s.io/api/core/v1 (the proto package is the Go path, dotted)."""
    if proto_package.startswith("k8s.io."):
        return "k8s.io/" + proto_package[len("k8s.io.") :].replace(".", "/")
    return proto_package.replace(".", "/")


def _message_name(binary: GoBinary, t: int) -> str:
    return binary.pkg_path(t).replace("/", ".") + "." + binary.type_name(t).rsplit(".", 1)[-1]


def _scalar(binary: GoBinary, t: int, wire: str) -> str:
    k = binary.kind(t)
    if k == binary.STRING:
        return "string"
    if k == binary.SLICE and binary.kind(binary.elem(t)) == 8:
        return "bytes"
    name = binary.KIND_NAMES.get(k)
    if name is None:
        raise ValueError(f"unsupported Go kind {k} for a scalar field")
    if wire.startswith("zigzag"):
        return "sint64" if wire == "zigzag64" else "sint32"
    return {"int": "int64", "uint": "uint64", "float64": "double", "float32": "float"}.get(
        name, name
    )


def _go_type(
    binary: GoBinary, t: int, wire: str, tag: str, package: str = ""
) -> tuple[str, bool, bool]:
    """(proto type, repeated, pointer) for a Go field type."""
    pointer = False
    if binary.kind(t) == binary.PTR:
        pointer, t = True, binary.elem(t)
    k = binary.kind(t)
    if k == binary.STRUCT:
        return _message_name(binary, t), False, pointer
    if k == binary.MAP:
        kt, vt = binary.map_kv(t)
        val_wire = (_tag(tag, "protobuf_val") or "bytes").split(",")[0]
        if binary.kind(vt) == binary.STRUCT:
            val = _message_name(binary, vt)
        elif binary.kind(vt) == binary.SLICE and binary.kind(binary.elem(vt)) != 8:
            # a named []string (authorization's ExtraValue): on the wire a message whose
            # field 1 repeats the strings (see go_messages), in JSON the list itself
            # (its package path is not kept for a named slice: it is its struct's package)
            val = f"{package}.{binary.type_name(vt).rsplit('.', 1)[-1]}"
            NAMED_STRING_SLICES.add(val)
        else:
            val = _scalar(binary, vt, val_wire)
        return f"map:{_scalar(binary, kt, 'bytes')}:{val}", False, pointer
    if k == binary.SLICE and binary.kind(binary.elem(t)) != 8:
        et = binary.elem(t)
        if binary.kind(et) == binary.PTR:
            et = binary.elem(et)
        if binary.kind(et) == binary.STRUCT:
            return _message_name(binary, et), True, pointer
        return _scalar(binary, et, wire), True, pointer
    return _scalar(binary, t, wire), False, pointer


# --------------------------------------------------------------------------- merge, output


def reachable(messages: dict[str, dict[int, Field]], roots: Iterable[str]) -> list[str]:
    seen: list[str] = []
    todo = list(roots)
    while todo:
        msg = todo.pop()
        if msg in seen:
            continue
        if msg not in messages:
            raise ValueError(f"message {msg} is referenced but not defined")
        seen.append(msg)
        for f in messages[msg].values():
            todo.extend(r for r in f.type.split(":") if r not in SCALARS and r != "map")
    return sorted(seen)


def merge(
    proto: dict[str, dict[int, Field]], go: dict[str, dict[int, Field]]
) -> tuple[dict[str, dict[int, Field]], list[str]]:
    """Go wins; return the merged messages and the list of disagreements."""
    notes: list[str] = []
    out: dict[str, dict[int, Field]] = {}
    for msg, gfields in go.items():
        pfields = proto.get(msg)
        if pfields is None:
            notes.append(f"{msg}: only in the Go binary")
            out[msg] = gfields
            continue
        for num, gf in gfields.items():
            pf = pfields.get(num)
            if pf is None:
                notes.append(f"{msg}.{gf.name} = {num}: only in the Go binary")
            elif (pf.type, pf.repeated) != (gf.type, gf.repeated):
                notes.append(
                    f"{msg} field {num}: proto {pf.name} {pf.type} rep={pf.repeated}, "
                    f"Go {gf.name} {gf.type} rep={gf.repeated}"
                )
            elif pf.name != gf.name and "i" not in gf.flags:
                notes.append(f"{msg} field {num}: proto name {pf.name}, JSON name {gf.name}")
        for num, pf in pfields.items():
            if num not in gfields:
                notes.append(f"{msg}.{pf.name} = {num}: only in the proto text (dropped)")
        out[msg] = gfields
    return out, notes


def render(messages: dict[str, dict[int, Field]], order: list[str], source: str) -> str:
    lines = [
        "{",
        '"_comment": '
        + json.dumps(
            "Generated by scripts/gen_protobuf_schema.py; do not edit. Field entries are "
            "[jsonName, type, repeated, flags]; flags: p = Go pointer (keep zero values), "
            "e = omitempty (drop zero values), i = inlined into the parent in JSON, "
            "? = no Go information."
        )
        + ",",
        '"source": ' + json.dumps(source) + ",",
        '"kinds": ' + json.dumps(KINDS, sort_keys=True, separators=(",", ":")) + ",",
        '"messages": {',
    ]
    for idx, msg in enumerate(order):
        body = {
            str(n): [f.name, f.type, f.repeated, f.flags] for n, f in sorted(messages[msg].items())
        }
        comma = "," if idx < len(order) - 1 else ""
        lines.append(json.dumps(msg) + ":" + json.dumps(body, separators=(",", ":")) + comma)
    lines += ["}", "}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proto", nargs="*", default=[], help="generated.proto files")
    ap.add_argument("--go-binary", help="Go binary built with the Kubernetes API types")
    ap.add_argument("--k8s-version", required=True, help="Kubernetes version of the sources")
    ap.add_argument("--proto-note", default="", help="where the proto text came from")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args(argv)
    if not args.proto and not args.go_binary:
        ap.error("give --proto files, --go-binary, or both")

    roots = sorted({m for kinds in KINDS.values() for m in kinds.values()})
    proto: dict[str, dict[int, Field]] = {}
    for path in args.proto:
        with open(path, encoding="utf-8") as f:
            proto.update(parse_proto(f.read()))
    source = f"Kubernetes {args.k8s_version}: "
    if args.go_binary:
        binary = GoBinary(os.path.realpath(args.go_binary))
        go = go_messages(binary, roots)
        if proto:
            messages, notes = merge(proto, go)
            for note in notes:
                print("note:", note, file=sys.stderr)
            source += "field numbers from generated.proto"
            if args.proto_note:
                source += f" ({args.proto_note})"
            source += ", checked against and completed from the Go type metadata of kubectl "
        else:
            messages = go
            source += "field numbers and flags from the Go type metadata of kubectl "
        source += f"{args.k8s_version} (struct tags: protobuf, json)"
    else:
        messages = proto
        source += "generated.proto files" + (f" ({args.proto_note})" if args.proto_note else "")
    order = reachable(messages, roots)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(render(messages, order, source))
    print(f"wrote {len(order)} messages to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
