-- policyhub's gate for lighttpd's mod_magnet (Lua 5.4): the request handling of
-- apps/gateways/renderers/base.py, rule for rule as apps/policies/decide.py evaluates it, over the
-- data table of the generated policy script. It is loaded once per lighttpd process, so it also
-- holds the process's state: the policy data in use, the rate-limit counters and, with browser
-- sign-in, the open /dev/urandom.
-- `lighty` is not a global inside a loaded module: every entry point receives it.

local json = require("cjson.safe").new()
json.decode_invalid_numbers(false) -- NaN or Infinity in exp/nbf must not pass as a number

local M = {}

local HS256_SIGNATURE_BYTES = 32
local ES256_SIGNATURE_BYTES = 64
local SUBJECT_MAX_LENGTH = 64
local MAPPED_IPV4_PREFIX = string.rep("\0", 10) .. "\255\255"
-- decide(): a percent-escape of a character that needs none (or of / and \) can only be a trick.
local MUST_NOT_BE_ESCAPED = "^[%w%-%._~/\\]$"

-- Paths ------------------------------------------------------------------------------------------

-- lighttpd has already decoded and normalised uri.path; decide() judges the path as sent.
local function request_path(raw_target)
  return raw_target:match("^[^?#]*")
end

local function is_canonical(path)
  if path:sub(1, 1) ~= "/" then
    return false
  end
  if not path:find("[%%\\]") and not path:find("/.", 1, true) then -- the common case, without loops
    return true
  end
  if path:find("\\", 1, true) then
    return false
  end
  for code in path:gmatch("%%(%x%x)") do
    if string.char(tonumber(code, 16)):match(MUST_NOT_BE_ESCAPED) then
      return false
    end
  end
  for segment in (path .. "/"):gmatch("([^/]*)/") do
    if segment == "." or segment == ".." then
      return false
    end
  end
  return true
end

-- Routes -----------------------------------------------------------------------------------------

local function normalize_host(authority)
  -- the common case: a lower-case name, maybe with a port, that the general path would return as is
  local simple = authority:match("^([a-z0-9_%-%.]*[a-z0-9_%-])$") or authority:match("^([a-z0-9_%-%.]*[a-z0-9_%-]):%d*$")
  if simple then
    return simple
  end
  local host = authority:match("^%s*(.-)%s*$"):lower()
  if host:sub(1, 1) == "[" then -- IPv6 literal, possibly with a port
    local close = host:find("]", 1, true)
    return close and host:sub(1, close) or ""
  end
  return (host:match("^[^:]*"):gsub("%.+$", ""))
end

-- Exact host first, then the longest "*." suffix; then the longest prefix on segment boundaries,
-- walking the path's own prefixes so a lookup never scans the routes.
local function find_route(policy, host, path)
  local prefixes = policy.exact[host]
  local rest = host
  while prefixes == nil do
    local dot = rest:find(".", 1, true)
    if dot == nil then
      return nil
    end
    rest = rest:sub(dot + 1)
    prefixes = policy.wildcard[rest]
  end
  local candidate = path:gsub("/+$", "")
  if candidate == "" then
    candidate = "/"
  end
  while true do
    local route = prefixes[candidate]
    if route ~= nil then
      return route
    end
    if candidate == "/" then
      return nil
    end
    candidate = candidate:match("^(.*)/")
    if candidate == "" then
      candidate = "/"
    end
  end
end

-- Edge tokens ------------------------------------------------------------------------------------

local function decode_part(c, part)
  local text = c.b64urldec(part)
  local value = text and json.decode(text)
  return type(value) == "table" and value or nil
end

local function valid_subject(subject)
  return type(subject) == "string"
    and #subject <= SUBJECT_MAX_LENGTH
    and subject:match("^[A-Za-z0-9@._:%-]+$") ~= nil
end

-- RS256 and ES256 through lua-luaossl (Debian lua-luaossl), loaded only when such a key is in use;
-- parsed public keys are kept per process. lighty.c offers HMAC and digests, no public-key crypto.
local public_keys = {}

local function public_key(pem)
  local key = public_keys[pem]
  if key == nil then
    key = require("openssl.pkey").new(pem, "PEM", "public")
    public_keys[pem] = key
  end
  return key
end

-- A JWS ES256 signature is r || s; OpenSSL verifies DER: SEQUENCE { INTEGER r, INTEGER s }.
local function der_integer(bytes)
  bytes = bytes:gsub("^%z+", "")
  if bytes == "" or bytes:byte(1) >= 0x80 then
    bytes = "\0" .. bytes
  end
  return "\2" .. string.char(#bytes) .. bytes
end

local function ecdsa_der(raw)
  local body = der_integer(raw:sub(1, ES256_SIGNATURE_BYTES // 2)) .. der_integer(raw:sub(ES256_SIGNATURE_BYTES // 2 + 1))
  return "\48" .. string.char(#body) .. body
end

local function signature_valid(c, key, signing_input, signature)
  if key.alg == "HS256" then
    -- lighty.c.hmac answers upper-case hex, and so does hexenc; digest_eq compares in constant time.
    return #signature == HS256_SIGNATURE_BYTES
      and c.digest_eq(c.hmac("sha256", key.secret, signing_input), c.hexenc(signature))
  end
  if key.alg == "ES256" then
    if #signature ~= ES256_SIGNATURE_BYTES then
      return false
    end
    signature = ecdsa_der(signature)
  end
  -- any failure (lua-luaossl missing, an unreadable key) leaves the token unverified: fail closed
  local ok, valid = pcall(function()
    local digest = require("openssl.digest").new("sha256")
    digest:update(signing_input)
    return public_key(key.pem):verify(signature, digest)
  end)
  return ok and valid == true
end

-- The claims of a token that passes every check, else nil: any failure means "no identity".
local function verified_claims(c, policy, authorization, now)
  local token = authorization and authorization:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(%S+) *$")
  local header64, payload64, signature64 = (token or ""):match("^([A-Za-z0-9_-]+)%.([A-Za-z0-9_-]+)%.([A-Za-z0-9_-]+)$")
  if header64 == nil then
    return nil
  end
  local header = decode_part(c, header64)
  local key = header and type(header.kid) == "string" and policy.keys[header.kid]
  if not key or header.alg ~= key.alg then -- the algorithm is pinned per kid, never read from the token
    return nil
  end
  local signature = c.b64urldec(signature64)
  if signature == nil or not signature_valid(c, key, header64 .. "." .. payload64, signature) then
    return nil
  end
  local claims = decode_part(c, payload64)
  if claims == nil
    or type(claims.exp) ~= "number" or claims.exp <= now - policy.leeway
    or (claims.nbf ~= nil and (type(claims.nbf) ~= "number" or claims.nbf > now + policy.leeway))
    or claims.iss ~= policy.issuer
    or claims.aud ~= policy.gateway
    or not valid_subject(claims.sub)
  then
    return nil
  end
  return claims
end

-- Signed links (apps/credentials/links.py) ----------------------------------------------------

local LINK_QUERY = "^ph_kid=([A-Za-z0-9._-]+)&ph_exp=(%d+)&ph_rule=([0-9a-f]+)&ph_sig=([A-Za-z0-9_-]+)$"
local LINK_MAC_BYTES = 32

-- The allow rule a valid signed link names, else nil: then the request is judged on its token.
local function link_rule(c, policy, route, method, raw_target, host, path, now)
  if route.links == nil or (method ~= "GET" and method ~= "HEAD") then
    return nil
  end
  local kid, expires, rule_key, mac64 = (raw_target:match("^[^?#]*%?([^#]*)") or ""):match(LINK_QUERY)
  local secret = kid and policy.link_keys[kid]
  if not secret or #expires > 12 or tonumber(expires) <= now or #rule_key ~= 16 or #mac64 ~= 43 then
    return nil
  end
  local index, mac = route.links[rule_key], c.b64urldec(mac64)
  if index == nil or mac == nil or #mac ~= LINK_MAC_BYTES then
    return nil
  end
  local message = expires .. ":" .. rule_key .. ":" .. host .. ":" .. path
  if not c.digest_eq(c.hmac("sha256", secret, message), c.hexenc(mac)) then
    return nil
  end
  return route.allow[index]
end

-- The token's roles as a set, and as the "a,b" value of the roles identity header.
local function token_roles(claims)
  local names = {}
  if type(claims.roles) == "table" then
    for _, role in ipairs(claims.roles) do
      if type(role) == "string" then
        names[#names + 1] = role
      end
    end
  elseif type(claims.roles_csv) == "string" then
    for role in claims.roles_csv:gmatch("[^,]+") do
      names[#names + 1] = role
    end
  end
  local set, unique = {}, {}
  for _, role in ipairs(names) do
    if not set[role] then
      set[role] = true
      unique[#unique + 1] = role
    end
  end
  table.sort(unique)
  return set, table.concat(unique, ",")
end

-- Verified tokens, per process: the full Authorization value -> its claims and roles. A hit skips
-- the signature and the JSON; the clock is checked on every request. Only tokens that passed
-- every check are kept; the table starts over when full and whenever the policy data changes.
local TOKEN_CACHE_SIZE = 10000
local verified = { entries = {}, count = 0 }

local function identity_of(c, policy, authorization, now)
  if authorization == nil then
    return nil
  end
  local entry = verified.entries[authorization]
  if entry == nil then
    local claims = verified_claims(c, policy, authorization, now)
    if claims == nil then
      return nil
    end
    local roles, roles_header = token_roles(claims)
    entry = { claims = claims, roles = roles, roles_header = roles_header, header_values = {}, bound = {} }
    if verified.count >= TOKEN_CACHE_SIZE then
      verified.entries, verified.count = {}, 0
    end
    verified.entries[authorization] = entry
    verified.count = verified.count + 1
  elseif entry.claims.exp <= now - policy.leeway
    or (entry.claims.nbf ~= nil and entry.claims.nbf > now + policy.leeway)
  then
    return nil
  end
  return entry
end

-- Client addresses -------------------------------------------------------------------------------

local function parse_ipv4(text)
  local parts = { text:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
  if #parts ~= 4 then
    return nil
  end
  for index, part in ipairs(parts) do
    local value = tonumber(part)
    if value > 255 or (#part > 1 and part:sub(1, 1) == "0") then -- leading zeros: ambiguous, like Python
      return nil
    end
    parts[index] = value
  end
  return string.char(table.unpack(parts))
end

local function hex_groups(text)
  local groups = {}
  if text == "" then
    return groups
  end
  for group in (text .. ":"):gmatch("([^:]*):") do
    if not group:match("^%x%x?%x?%x?$") then
      return nil
    end
    groups[#groups + 1] = tonumber(group, 16)
  end
  return groups
end

local function parse_ipv6(text)
  text = text:gsub("%%.*$", "") -- a zone index does not change which network the address is in
  local leading, dotted = text:match("^(.*:)([^:]*%.[^:]*)$")
  if dotted then -- a trailing dotted quad is the last two groups
    local ipv4 = parse_ipv4(dotted)
    if ipv4 == nil then
      return nil
    end
    local a, b, c, d = ipv4:byte(1, 4)
    text = leading .. string.format("%x:%x", a << 8 | b, c << 8 | d)
  end
  local head, tail = text, nil
  local gap = text:find("::", 1, true)
  if gap then
    head, tail = text:sub(1, gap - 1), text:sub(gap + 2)
  end
  local groups, after = hex_groups(head), hex_groups(tail or "")
  if groups == nil or after == nil then
    return nil
  end
  local missing = 8 - #groups - #after
  if (tail and missing < 1) or (not tail and missing ~= 0) then -- "::" stands for one group or more
    return nil
  end
  for _ = 1, missing do
    groups[#groups + 1] = 0
  end
  table.move(after, 1, #after, #groups + 1, groups)
  local bytes = {}
  for index, group in ipairs(groups) do
    bytes[index] = string.char(group >> 8, group & 0xFF)
  end
  return table.concat(bytes)
end

-- 4 bytes for IPv4 (IPv4-mapped IPv6 included, as decide() unwraps it), 16 for IPv6, nil if unparseable.
local function parse_address(text)
  if text == nil then
    return nil
  end
  if not text:find(":", 1, true) then
    return parse_ipv4(text)
  end
  local bytes = parse_ipv6(text)
  if bytes and bytes:sub(1, 12) == MAPPED_IPV4_PREFIX then
    return bytes:sub(13)
  end
  return bytes
end

-- networks: { {network address bytes, prefix length}, ... }; versions never match each other.
local function in_networks(address, networks)
  if address == nil then
    return false
  end
  for _, network in ipairs(networks) do
    local bytes, bits = network[1], network[2]
    if #bytes == #address then
      local whole, rest = bits // 8, bits % 8
      if address:sub(1, whole) == bytes:sub(1, whole) then
        local mask = (0xFF << (8 - rest)) & 0xFF
        if rest == 0 or (address:byte(whole + 1) & mask) == bytes:byte(whole + 1) then
          return true
        end
      end
    end
  end
  return false
end

-- Rules ------------------------------------------------------------------------------------------

-- roles: the identity's role set, nil without an identity.
local function identity_matches(rule, roles)
  if rule.mode == "public" then
    return true
  end
  if roles == nil then
    return false
  end
  if rule.mode == "roles" then
    for role in pairs(rule.roles) do
      if roles[role] then
        return true
      end
    end
    return false
  end
  return true
end

-- The admitting allow rule, or nil and the status: deny rules win; then the first allow rule
-- that matches; a refusal is 401 when some allow rule needed an identity the request lacked.
local function evaluate(route, roles, address)
  for _, rule in ipairs(route.deny) do
    -- a deny rule with networks also matches an unknown address: unparseable fails closed
    if identity_matches(rule, roles) and (rule.networks == nil or address == nil or in_networks(address, rule.networks)) then
      return nil, 403
    end
  end
  local identity_needed = false
  for _, rule in ipairs(route.allow) do
    if identity_matches(rule, roles) and (rule.networks == nil or in_networks(address, rule.networks)) then
      return rule
    end
    identity_needed = identity_needed or (rule.mode ~= "public" and roles == nil)
  end
  return nil, identity_needed and 401 or 403
end

-- A link holder's identity was judged when the link was issued; the network is judged now.
local function evaluate_link(route, rule, address)
  for _, deny in ipairs(route.deny) do
    if (deny.networks and (address == nil or in_networks(address, deny.networks)))
      or (deny.networks == nil and deny.mode == "public")
    then
      return nil, 403
    end
  end
  if rule.networks == nil or in_networks(address, rule.networks) then
    return rule
  end
  return nil, 403
end

-- Rate limits: per (subject, route) per clock minute, in this process --------------------------

local window = { minute = nil, counts = {} }

local function over_limit(rule, route, subject, now)
  local minute = now // 60
  if window.minute ~= minute then
    window.minute, window.counts = minute, {}
  end
  local key = subject .. "\0" .. route.key
  local count = (window.counts[key] or 0) + 1
  window.counts[key] = count
  return count > rule.rate_limit
end

-- The request ------------------------------------------------------------------------------------

local current = { version = nil, policy = nil }

-- The generated script rebuilds its data only when its version changes, not on every request.
local function policy_data(version, build)
  if current.version ~= version then
    current.policy, current.version = build(), version
    verified.entries, verified.count = {}, 0 -- keys or issuer may have changed
  end
  return current.policy
end

-- The identity's value for a header's claim ("" for none), cleaned once per verified token.
local function header_value(identity, claim)
  local value = identity.header_values[claim]
  if value == nil then
    value = claim == "roles_csv" and identity.roles_header or identity.claims[claim]
    value = type(value) == "string" and (value:gsub("%c", "")) or "" -- no decoded claim may split a header
    identity.header_values[claim] = value
  end
  return value
end

local function forward_identity(r, rule, identity)
  for _, header in ipairs(rule.headers or {}) do
    local value = header_value(identity, header[2])
    if value ~= "" then
      r.req_header[header[1]] = value
    end
  end
end

-- Identity assertions (apps/credentials/assertions.py) ---------------------------------------

-- The identity's lines of the signed string under ``rule``: each bound header's value as
-- forward_identity sets it (without surrounding blanks), else empty. Once per verified token and rule.
local function bound_identity(assertion, rule, identity)
  local text = identity.bound[rule]
  if text == nil then
    local forwarded, lines = {}, {}
    for _, header in ipairs(rule.headers or {}) do
      forwarded[header[1]] = header_value(identity, header[2]):match("^[ \t]*(.-)[ \t]*$")
    end
    for index, name in ipairs(assertion.bound_headers) do
      lines[index] = forwarded[name] or ""
    end
    text = table.concat(lines, "\n")
    identity.bound[rule] = text
  end
  return text
end

-- The path is request.uri's, the target as mod_proxy forwards it (lighttpd re-encodes the raw
-- one: %2c -> %2C), which is what the upstream verifies.
local function set_assertion(c, r, policy, rule, identity, host, method, now)
  local assertion = policy.assertion
  local message = "v1\n" .. assertion.kid .. "\n" .. now .. "\n" .. host .. "\n" .. method .. "\n"
    .. r.req_attr["request.uri"]:match("^[^?]*") .. "\n" .. bound_identity(assertion, rule, identity)
  local mac = c.b64urlenc(c.hexdec(c.hmac("sha256", assertion.key, message)))
  r.req_header[policy.assertion_header] = "v1;kid=" .. assertion.kid .. ";ts=" .. now .. ";sig=" .. mac
end

local REFUSALS = {
  [400] = "path not canonical",
  [401] = "authentication required",
  [403] = "forbidden",
  [404] = "no route",
  [405] = "method not allowed",
  [429] = "rate limit exceeded",
}

-- An answer with a body of its own: for a body-less status >= 400 lighttpd writes its HTML error
-- page and drops the response headers the script set (Allow, for one).
local function answer(r, status, text)
  r.resp_header["Content-Type"] = "text/plain"
  r.resp_body:set(text .. "\n")
  return status
end

local function refuse(r, status)
  return answer(r, status, REFUSALS[status])
end

-- Browser sign-in (renderers/base.py, S1-S5) -----------------------------------------------------

-- The revocation list is a script of its own that runs before this one and reads only the
-- Authorization header. A browser's token (its cookie, or the callback's query) is therefore put
-- there and lighttpd runs the raw-url scripts again (RESTART_REQUEST), so that the list judges it
-- exactly as it judges a bearer token; the request environment, which no client can set, tells the
-- second pass whose token the header holds. Requests that send Authorization never restart.
local PRESENTED_ENV = "POLICYHUB_PRESENTED"
local STATE_BYTES = 32 -- base64url: the 43 characters of S4's state
local SIGN_IN_FAILED = "sign-in failed"

local function present(lighty, r, token, origin)
  r.req_header["Authorization"] = "Bearer " .. token
  r.req_env[PRESENTED_ENV] = origin
  return lighty.RESTART_REQUEST
end

-- S3: the cookie's token, unless the cookie was already presented on this request.
local function cookie_token(c, r, sign_in)
  local header = r.req_header["Cookie"]
  if header == nil or r.req_env[PRESENTED_ENV] ~= nil then
    return nil
  end
  local token = c.cookie_tokens(header)[sign_in.cookie]
  return token ~= "" and token or nil
end

-- S3: the upstream never sees the gateway's cookies: the session cookie is a credential.
local function strip_sign_in_cookies(r, sign_in)
  local header = r.req_header["Cookie"]
  if header == nil or not (header:find(sign_in.cookie, 1, true) or header:find(sign_in.state_cookie, 1, true)) then
    return
  end
  local kept = {}
  for pair in header:gmatch("[^;]+") do
    local trimmed = pair:match("^%s*(.-)%s*$")
    local name = trimmed:match("^(.-)%s*=") or trimmed
    if trimmed ~= "" and name ~= sign_in.cookie and name ~= sign_in.state_cookie then
      kept[#kept + 1] = trimmed
    end
  end
  r.req_header["Cookie"] = #kept > 0 and table.concat(kept, "; ") or nil
end

local function cookie(sign_in, name, value, max_age)
  return name .. "=" .. value .. "; Max-Age=" .. max_age .. sign_in.cookie_attributes
end

-- A second assignment to a response header replaces the first; lighttpd keeps repeated fields as
-- one value with "\r\nName: " between them (as it does for an upstream's) and sends them as lines.
local function set_cookies(r, first, second)
  r.resp_header["Set-Cookie"] = first .. "\r\nSet-Cookie: " .. second
end

-- S4: a browser loading a page (not a script): GET or HEAD, no Authorization header of its own,
-- HTML accepted.
local function is_navigation(r, method)
  if method ~= "GET" and method ~= "HEAD" then
    return false
  end
  if r.req_header["Authorization"] ~= nil and r.req_env[PRESENTED_ENV] == nil then
    return false
  end
  local accept = r.req_header["Accept"]
  return accept ~= nil and accept:lower():find("text/html", 1, true) ~= nil
end

-- S5: a page load identified by the cookie, while its token still has a little time left.
local function needs_renewal(r, sign_in, identity, method, now)
  return identity.claims.exp - now < sign_in.refresh_seconds
    and r.req_env[PRESENTED_ENV] == "cookie"
    and is_navigation(r, method)
end

-- 32 bytes of /dev/urandom (kept open: one read per redirect), nil when it cannot be read.
local urandom = nil

local function fresh_state(c)
  urandom = urandom or io.open("/dev/urandom", "rb")
  local bytes = urandom and urandom:read(STATE_BYTES)
  if bytes == nil or #bytes ~= STATE_BYTES then
    if urandom then
      urandom:close()
    end
    urandom = nil -- the next redirect opens it again
    return nil
  end
  return c.b64urlenc(bytes)
end

-- S4/S5: to policyhub's sign-in, which sends the browser back to the callback with a token bound
-- to this state. nil when no unpredictable state can be made: the caller answers as it would
-- without sign-in. lighttpd has normalised the Host header already (lower case, no default port).
local function sign_in_redirect(c, r, sign_in, raw_target)
  local state = fresh_state(c)
  if state == nil then
    return nil
  end
  local original = sign_in.scheme .. "://" .. (r.req_header["Host"] or "") .. raw_target
  r.resp_header["Location"] = sign_in.sign_in_location .. c.urlenc(original) .. "&state=" .. state
  r.resp_header["Set-Cookie"] = cookie(sign_in, sign_in.state_cookie, state, sign_in.state_max_age)
  return answer(r, 302, "sign-in required")
end

-- S1.
local function sign_out(r, sign_in, method)
  if method ~= "GET" and method ~= "HEAD" then
    r.resp_header["Allow"] = "GET, HEAD"
    return refuse(r, 405)
  end
  r.resp_header["Location"] = sign_in.sign_out_location
  r.resp_header["Set-Cookie"] = cookie(sign_in, sign_in.cookie, "", 0)
  return answer(r, 302, "signed out")
end

local function query_value(raw_target, name)
  return ("&" .. (raw_target:match("%?([^#]*)") or "")):match("&" .. name .. "=([^&]*)")
end

local function hex_byte(hex)
  return string.char(tonumber(hex, 16))
end

-- S2's rd, percent-decoded once, when it is a path on this host (SAFE_RETURN_PATH); lighty.c.urldec
-- would turn an escaped control character into "_" instead of leaving it to be refused.
local function return_path(raw_target)
  local path = (query_value(raw_target, "rd") or ""):gsub("%%(%x%x)", hex_byte)
  if path:find("^/[!-~]*$") and not path:find("\\", 1, true) and path:sub(2, 2) ~= "/" then
    return path
  end
  return nil
end

-- S2: the claims of a fresh sign-in token for this browser's state, else nil. The header holds the
-- callback's token, or nothing if the revocation list removed it.
local function sign_in_claims(c, policy, r, state, now)
  local identity = identity_of(c, policy, r.req_header["Authorization"], now)
  local claims = identity and identity.claims
  if claims == nil or claims.purpose ~= policy.sign_in.purpose or type(claims.nonce) ~= "string" then
    return nil
  end
  local fresh = type(claims.iat) == "number" and now - claims.iat <= policy.sign_in.callback_max_age + policy.leeway
  return fresh and c.secret_eq(claims.nonce, state) and claims or nil
end

-- S2: cheap checks first, then the token goes through the revocation list (see present).
local function callback(lighty, r, policy, method, raw_target)
  local c, sign_in = lighty.c, policy.sign_in
  local token, rd = query_value(raw_target, "token"), return_path(raw_target)
  local state = c.cookie_tokens(r.req_header["Cookie"] or "")[sign_in.state_cookie]
  if method ~= "GET" or not token or not rd or not state or state == "" then
    return answer(r, 400, SIGN_IN_FAILED)
  end
  if r.req_env[PRESENTED_ENV] ~= "callback" then
    return present(lighty, r, token, "callback")
  end
  -- lighty.c.time() is the server's cached second, which may lag a second behind: the cookie
  -- would outlive its token by that second.
  local now = os.time()
  local claims = sign_in_claims(c, policy, r, state, now)
  if claims == nil then
    return answer(r, 400, SIGN_IN_FAILED)
  end
  r.resp_header["Location"] = rd
  local lifetime = math.floor(claims.exp - now) -- cjson decodes every number as a float: 900.0
  set_cookies(r, cookie(sign_in, sign_in.cookie, token, lifetime), cookie(sign_in, sign_in.state_cookie, "", 0))
  return answer(r, 302, "signed in")
end

-- S1 and S2 answer on any host, before routing; nil for every other path.
local function sign_in_endpoint(lighty, r, policy, method, path, raw_target)
  local sign_in = policy.sign_in
  if path == sign_in.callback_path then
    return callback(lighty, r, policy, method, raw_target)
  end
  if path == sign_in.sign_out_path then
    return sign_out(r, sign_in, method)
  end
  return nil
end

-- Step 2: what only the gate may tell the upstream (or lighttpd's proxy.server blocks).
local function strip_client_headers(r, policy)
  for _, name in ipairs(policy.identity_headers) do
    r.req_header[name] = nil
  end
  r.req_header[policy.upstream_header] = nil
  r.req_header[policy.assertion_header] = nil
end

-- S3 and S5: a request's identity when browsers may sign in, and the status the gate answers
-- before judging the rules, if any (the cookie going through the revocation list, a renewal).
local function browser_identity(lighty, r, policy, method, raw_target, now)
  local c, sign_in = lighty.c, policy.sign_in
  local authorization = r.req_header["Authorization"]
  local token = authorization == nil and cookie_token(c, r, sign_in)
  if token then
    return nil, present(lighty, r, token, "cookie")
  end
  local identity = identity_of(c, policy, authorization, now)
  if identity and needs_renewal(r, sign_in, identity, method, now) then
    return identity, sign_in_redirect(c, r, sign_in, raw_target)
  end
  return identity
end

-- A refusal; a navigation that lacks an identity is sent to sign in instead (S4).
local function refusal(c, r, sign_in, status, method, raw_target)
  if status == 401 then
    local redirect = sign_in and is_navigation(r, method) and sign_in_redirect(c, r, sign_in, raw_target)
    if redirect then
      return redirect
    end
    r.resp_header["WWW-Authenticate"] = "Bearer"
  end
  return refuse(r, status)
end

-- Returns the status the gate answers, or nothing to let mod_proxy forward the request.
function M.handle(lighty, version, build)
  local policy = policy_data(version, build)
  local r, c = lighty.r, lighty.c
  local sign_in = policy.sign_in
  local raw_target = r.req_attr["request.orig-uri"] or ""
  local path = request_path(raw_target)
  local method = (r.req_attr["request.method"] or ""):upper()
  if method == "GET" and path == policy.well_known_path then
    r.resp_header["Content-Type"] = "application/json"
    r.resp_body:set(policy.well_known_body)
    return 200
  end
  strip_client_headers(r, policy)
  if not is_canonical(path) then
    return refuse(r, 400)
  end
  local endpoint = sign_in and sign_in_endpoint(lighty, r, policy, method, path, raw_target)
  if endpoint then
    return endpoint
  end
  local host = normalize_host(r.req_attr["uri.authority"] or "")
  local route = find_route(policy, host, path)
  if route == nil then
    return refuse(r, 404)
  end
  if route.methods and not route.methods[method] then
    r.resp_header["Allow"] = route.allow_header
    return refuse(r, 405)
  end
  local now = c.time()
  local address = route.needs_address and parse_address(r.req_attr["request.remote-addr"]) or nil
  local rule, status, identity, answered
  local linked = link_rule(c, policy, route, method, raw_target, host, path, now)
  if linked then
    rule, status = evaluate_link(route, linked, address)
  else
    if sign_in then
      identity, answered = browser_identity(lighty, r, policy, method, raw_target, now)
      if answered then
        return answered
      end
    else
      identity = identity_of(c, policy, r.req_header["Authorization"], now)
    end
    rule, status = evaluate(route, identity and identity.roles, address)
  end
  if rule == nil then
    return refusal(c, r, sign_in, status, method, raw_target)
  end
  if rule.rate_limit and identity and over_limit(rule, route, identity.claims.sub, now) then
    return refuse(r, 429)
  end
  r.req_header["Authorization"] = nil
  if sign_in then
    strip_sign_in_cookies(r, sign_in)
  end
  if identity then
    forward_identity(r, rule, identity)
    if policy.assertion and rule.mode ~= "public" then -- a public rule admits anyone: nothing to vouch for
      set_assertion(c, r, policy, rule, identity, host, method, now)
    end
  end
  r.req_header[policy.upstream_header] = route.upstream
  r.req_env[policy.cache_control_env] = rule.cache_control
end

return M
