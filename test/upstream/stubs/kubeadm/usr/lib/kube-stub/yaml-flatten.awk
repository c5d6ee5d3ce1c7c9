# Flattens the block-style YAML found in kubeadm configs and Kubernetes manifests into one line per scalar:
#   DOC<TAB>PATH<TAB>VALUE
# DOC counts documents from 0; PATH joins mapping keys and sequence indexes with dots
# (bootstrapTokens.0.token); a key with no value (null) gets an empty VALUE, `{}` and `[]` are kept as written,
# and newlines inside block scalars (`|`, `>`) become the two characters \n.
# Handles: multi-document streams, nested mappings and sequences (including `- ` at the parent key's indent, as
# kubectl writes them), quoted scalars, one-line flow sequences/mappings of scalars, comments.
# Not handled (the stubs never meet them): anchors/aliases, tags, multi-line flow collections or quoted scalars.
# Written for POSIX awk (Debian's mawk).

BEGIN { doc = 0; depth = 0; content = 0; pending = ""; in_block = 0 }

{
  sub(/\r$/, "")
  if (in_block && block_takes($0)) next
  line = strip_comment($0)
  if (line ~ /^[ \t]*$/) next
  if (line ~ /^(---|\.\.\.)([ \t]|$)/) { end_document(); next }
  if (line ~ /^ *\t/) fail("tab used for indentation")
  match(line, /^ */)
  indent = RLENGTH
  text = substr(line, indent + 1)
  sub(/[ \t]+$/, "", text)
  if (is_item(text)) sequence_item(indent, text)
  else mapping_entry(indent, text)
}

END {
  if (in_block) end_block()
  end_document()
}

function fail(message) {
  printf "line %d: %s\n", NR, message > "/dev/stderr"
  exit 2
}

function emit(path, value) {
  printf "%d\t%s\t%s\n", doc, path, value
  content = 1
}

function join_path(parent, child) { return parent == "" ? child : parent "." child }

function is_item(text) { return text == "-" || substr(text, 1, 2) == "- " }

function end_document() {
  if (pending != "") emit(pending, "")
  if (content) doc++
  depth = 0; content = 0; pending = ""
}

function push(indent, path, kind) {
  depth++
  frame_indent[depth] = indent; frame_path[depth] = path; frame_kind[depth] = kind; frame_index[depth] = -1
  content = 1
}

# Before a node at `indent`: give a key left without a value its child collection (or a null), then close every
# collection this node is not part of.
function settle(indent, item,    key) {
  if (pending != "") {
    key = pending; pending = ""
    if (indent > pending_indent || (item && indent == pending_indent)) {
      push(indent, key, item ? "seq" : "map")
      return
    }
    emit(key, "")
  }
  while (depth > 0 && frame_indent[depth] > indent) depth--
  if (!item) while (depth > 0 && frame_indent[depth] == indent && frame_kind[depth] == "seq") depth--
  if (depth == 0) push(indent, "", item ? "seq" : "map")
}

function sequence_item(indent, text,    path, rest, rest_indent) {
  settle(indent, 1)
  if (frame_kind[depth] != "seq" || frame_indent[depth] != indent) fail("sequence item where a mapping key was expected")
  frame_index[depth]++
  path = join_path(frame_path[depth], frame_index[depth])
  rest = substr(text, 2)
  match(rest, /^ */)
  rest_indent = indent + 1 + RLENGTH
  rest = substr(rest, RLENGTH + 1)
  if (rest == "") { pending = path; pending_indent = indent; return }
  if (is_item(rest)) { push(rest_indent, path, "seq"); sequence_item(rest_indent, rest); return }
  if (split_key(rest)) { push(rest_indent, path, "map"); mapping_entry(rest_indent, rest); return }
  node_value(path, rest, indent)
}

function mapping_entry(indent, text) {
  settle(indent, 0)
  if (frame_kind[depth] != "map" || frame_indent[depth] != indent) fail("bad indentation")
  if (!split_key(text)) fail("expected \"key: value\", got \"" text "\"")
  node_value(join_path(frame_path[depth], KEY), VALUE, indent)
}

# Sets KEY and VALUE from "key: value" (key plain or quoted); returns 0 when text is not a mapping entry.
function split_key(text,    quote, end, at) {
  quote = substr(text, 1, 1)
  if (quote == "\"" || quote == "'") {
    end = index(substr(text, 2), quote)
    if (end == 0) return 0
    KEY = substr(text, 2, end - 1)
    at = end + 2
    if (substr(text, at, 1) != ":") return 0
  } else {
    if (!match(text, /:( |$)/)) return 0
    at = RSTART
    KEY = substr(text, 1, at - 1)
    if (KEY ~ /^[\[{]/) return 0
  }
  VALUE = substr(text, at + 1)
  sub(/^ +/, "", VALUE)
  return 1
}

function node_value(path, value, indent) {
  if (value == "") { pending = path; pending_indent = indent; return }
  if (value ~ /^[|>][-+0-9]*$/) { start_block(path, value, indent); return }
  if (substr(value, 1, 1) == "[") { flow_sequence(path, value); return }
  if (substr(value, 1, 1) == "{") { flow_mapping(path, value); return }
  emit(path, scalar(value))
}

function start_block(path, header, indent) {
  in_block = 1; block_path = path; block_folded = (substr(header, 1, 1) == ">")
  block_parent = indent; block_indent = -1; block_lines = 0
}

# Takes a raw line into the open block scalar; returns 0 (after closing the block) when the line is not part of it.
function block_takes(raw,    n) {
  if (raw ~ /^ *$/) { block_text[++block_lines] = ""; return 1 }
  match(raw, /^ */)
  n = RLENGTH
  if (n <= block_parent) { end_block(); return 0 }
  if (block_indent < 0) block_indent = n
  block_text[++block_lines] = substr(raw, block_indent + 1)
  return 1
}

function end_block(    i, out, sep) {
  while (block_lines > 0 && block_text[block_lines] == "") block_lines--
  out = ""
  sep = block_folded ? " " : "\\n"
  for (i = 1; i <= block_lines; i++) out = out (i > 1 ? sep : "") block_text[i]
  in_block = 0
  emit(block_path, out)
}

function flow_sequence(path, value,    n, i) {
  if (substr(value, length(value), 1) != "]") fail("flow sequence must end on its line")
  n = split_flow(substr(value, 2, length(value) - 2))
  if (n == 0) { emit(path, "[]"); return }
  for (i = 1; i <= n; i++) emit(join_path(path, i - 1), scalar(FLOW[i]))
}

function flow_mapping(path, value,    n, i) {
  if (substr(value, length(value), 1) != "}") fail("flow mapping must end on its line")
  n = split_flow(substr(value, 2, length(value) - 2))
  if (n == 0) { emit(path, "{}"); return }
  for (i = 1; i <= n; i++) {
    if (!split_key(FLOW[i])) fail("expected \"key: value\" in flow mapping")
    emit(join_path(path, KEY), scalar(VALUE))
  }
}

# Splits the inside of a flow collection at commas outside quotes into FLOW[1..n]; returns n.
function split_flow(inner,    n, i, c, quote, item) {
  n = 0; quote = ""; item = ""
  for (i = 1; i <= length(inner); i++) {
    c = substr(inner, i, 1)
    if (quote != "") { if (c == quote) quote = ""; item = item c; continue }
    if (c == "\"" || c == "'") quote = c
    if (c == "[" || c == "{") fail("nested flow collections are not supported")
    if (c == ",") { FLOW[++n] = trim(item); item = ""; continue }
    item = item c
  }
  if (trim(item) != "") FLOW[++n] = trim(item)
  return n
}

function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }

function scalar(value,    quote, body, out, i, c) {
  quote = substr(value, 1, 1)
  if (quote == "'") {
    body = substr(value, 2, length(value) - 2)
    gsub(/''/, "'", body)
    return body
  }
  if (quote == "\"") {
    body = substr(value, 2, length(value) - 2)
    out = ""
    for (i = 1; i <= length(body); i++) {
      c = substr(body, i, 1)
      if (c == "\\") {
        c = substr(body, ++i, 1)
        if (c == "n") c = "\\n"
        else if (c == "t") c = "\t"
      }
      out = out c
    }
    return out
  }
  if (value == "~" || value == "null" || value == "Null" || value == "NULL") return ""
  return value
}

# Drops a comment: `#` at the start or after a blank, outside a quoted scalar. A quote only opens a scalar where
# one can start (line start, after a blank or a flow bracket/comma), so the apostrophe in "don't" does not.
function strip_comment(raw,    i, c, quote, prev) {
  quote = ""; prev = " "
  for (i = 1; i <= length(raw); i++) {
    c = substr(raw, i, 1)
    if (quote == "\"" && c == "\\") { i++; prev = ""; continue }
    if (quote != "") { if (c == quote) quote = ""; prev = c; continue }
    if ((c == "\"" || c == "'") && prev ~ /^[ \t\[{,]$/) quote = c
    else if (c == "#" && prev ~ /^[ \t]$/) return substr(raw, 1, i - 1)
    prev = c
  }
  return raw
}
