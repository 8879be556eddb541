//! Target profiles: how `run` maps onto a Phoenix Channels app (TOML, format in
//! `fixtures/profiles/README.md`). A profile names the HTTP call that creates the
//! measured event (method, path, headers, a JSON body template with placeholders), how
//! accounts are obtained (one per corpus user, one static token, or none), the socket
//! path and params, the firehose and tag topic names, the event names listeners count,
//! and where in the event payload the correlation URL and the per-topic sequence number
//! live (JSON pointers). The firehose app's own profile is compiled in from
//! `fixtures/profiles/firehose.toml` and is the default.
//!
//! Loading checks everything once (unknown keys, wrong types, unknown placeholders,
//! malformed pointers) and points at file:line:column; the rest of the run trusts it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use toml::Spanned;

use crate::plan::scenario::{Place, line_col, snippet};

/// Where shipped profiles live, relative to the repository root.
pub const PROFILE_DIR: &str = "fixtures/profiles";

const FIREHOSE_TOML: &str = include_str!("../../../fixtures/profiles/firehose.toml");

static FIREHOSE: LazyLock<Arc<Profile>> = LazyLock::new(|| {
    // The file is part of the build and covered by tests; a broken edit to it fails them.
    Arc::new(Profile::parse(Path::new("fixtures/profiles/firehose.toml"), FIREHOSE_TOML).map_or_else(
        |e| panic!("the built-in firehose profile does not load: {e}"),
        |mut p| {
            p.source = None;
            p
        },
    ))
});

// ---------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: Spanned<String>,
    description: Option<String>,
    #[serde(default)]
    auth: Option<Spanned<AuthFile>>,
    create: Spanned<CreateFile>,
    #[serde(default)]
    seed: SeedFile,
    #[serde(default)]
    socket: Option<Spanned<SocketFile>>,
    topics: Spanned<TopicsFile>,
    events: Spanned<EventsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    kind: Spanned<String>,
    path: Option<Spanned<String>>,
    body: Option<Spanned<toml::Value>>,
    status: Option<Spanned<u16>>,
    /// `users`: JSON pointer to the token in the response; `token`: the token itself.
    token: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFile {
    method: Option<Spanned<String>>,
    path: Spanned<String>,
    status: Option<Spanned<u16>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    body: Spanned<toml::Value>,
    #[serde(default)]
    response: ResponseFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseFile {
    public: Option<Spanned<String>>,
    tags: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default = "yes")]
    bookmarks: bool,
}

impl Default for SeedFile {
    fn default() -> Self {
        Self { bookmarks: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SocketFile {
    path: Option<Spanned<String>>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicsFile {
    firehose: Spanned<String>,
    tag: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsFile {
    names: Spanned<Vec<String>>,
    url: Spanned<String>,
    seq: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------
// The profile, checked.

/// A loaded, checked profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub name: String,
    /// The file it came from; `None` for the built-in firehose profile.
    pub source: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub auth: Auth,
    pub create: Create,
    /// Whether `--seed-bookmarks` creates items (through `create`) before measuring.
    pub seed_bookmarks: bool,
    pub socket: SocketSpec,
    pub topics: Topics,
    pub events: Events,
}

/// How requests are authorised.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Auth {
    /// One account per corpus user, created before measuring: `{{token}}` is that
    /// user's token.
    Users { method: String, path: String, body: Template, status: u16, token: Pointer },
    /// One static token for every request (not written into reports).
    Token {
        #[serde(skip)]
        token: String,
    },
    /// No accounts: `{{token}}` is not available.
    None,
}

/// The measured request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Create {
    pub method: String,
    pub path: String,
    /// The status that means "created".
    pub status: u16,
    pub headers: Vec<(String, Template)>,
    pub body: Template,
    /// Pointer to a bool in the response saying the item is public; `None`: public
    /// unless it was requested private.
    pub public: Option<Pointer>,
    /// Pointer to the stored tags (strings) in the response; `None`: the tags sent.
    pub tags: Option<Pointer>,
    /// Whether the body can ask for a private item (`{{private}}` or `{{public}}`).
    pub can_be_private: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SocketSpec {
    pub path: String,
    pub params: BTreeMap<String, String>,
}

/// Topic names; `tag` holds `{{tag}}` once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topics {
    pub firehose: String,
    pub tag: String,
}

impl Topics {
    /// The topic of tag `tag`.
    pub fn tag_topic(&self, tag: &str) -> String {
        self.tag.replacen(TAG, tag, 1)
    }

    /// The tag of a tag topic, if `topic` is one.
    pub fn tag_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let (prefix, suffix) = self.tag.split_once(TAG)?;
        topic.strip_prefix(prefix)?.strip_suffix(suffix)
    }
}

const TAG: &str = "{{tag}}";

/// What listeners count and where its fields are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Events {
    pub names: Vec<String>,
    pub url: Pointer,
    /// `None`: the app numbers nothing, and duplicate/reorder/gap checks are off.
    pub seq: Option<Pointer>,
}

/// The fields a listener needs from one event payload, borrowed where possible.
#[derive(Debug, Default)]
pub struct Picked<'a> {
    pub url: Option<Cow<'a, str>>,
    pub seq: Option<u64>,
}

impl Events {
    pub fn counts(&self, event: &str) -> bool {
        self.names.iter().any(|n| n == event)
    }

    /// Reads the URL and seq out of a payload (raw JSON) in one pass, without building
    /// a tree. `Err` when the payload is not shaped as the pointers say.
    pub fn pick<'a>(&self, payload: &'a str) -> Result<Picked<'a>, serde_json::Error> {
        let seed = Pick { url: Some(&self.url.segments), seq: self.seq.as_ref().map(|p| p.segments.as_slice()) };
        let mut de = serde_json::Deserializer::from_str(payload);
        let picked = seed.deserialize(&mut de)?;
        de.end()?;
        Ok(picked)
    }
}

/// A JSON pointer (RFC 6901) through object members.
#[derive(Debug, Clone, PartialEq)]
pub struct Pointer {
    pub text: String,
    segments: Vec<String>,
}

impl Pointer {
    fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("{text:?} is not a JSON pointer (it must start with `/`, e.g. \"/data/url\")"));
        };
        let segments = rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
        Ok(Self { text: text.to_owned(), segments })
    }

    /// The value at this pointer in `v`.
    pub fn get<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        v.pointer(&self.text)
    }

    fn overlaps(&self, other: &Pointer) -> bool {
        let n = self.segments.len().min(other.segments.len());
        self.segments[..n] == other.segments[..n]
    }
}

impl Serialize for Pointer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

// ---------------------------------------------------------------------------------
// Templates.

/// A placeholder's value source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    Url,
    Title,
    Description,
    Tags,
    Private,
    Public,
    Username,
    Token,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "url" => Var::Url,
            "title" => Var::Title,
            "description" => Var::Description,
            "tags" => Var::Tags,
            "private" => Var::Private,
            "public" => Var::Public,
            "username" => Var::Username,
            "token" => Var::Token,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Var::Url => "url",
            Var::Title => "title",
            Var::Description => "description",
            Var::Tags => "tags",
            Var::Private => "private",
            Var::Public => "public",
            Var::Username => "username",
            Var::Token => "token",
        }
    }
}

/// What placeholders stand for in one request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vars<'a> {
    pub url: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub tags: &'a [String],
    pub private: bool,
    pub username: &'a str,
    pub token: &'a str,
}

impl Vars<'_> {
    fn value(&self, var: Var) -> Value {
        match var {
            Var::Tags => Value::from(self.tags),
            Var::Private => Value::Bool(self.private),
            Var::Public => Value::Bool(!self.private),
            text => Value::String(self.text(text).into_owned()),
        }
    }

    fn text(&self, var: Var) -> Cow<'_, str> {
        match var {
            Var::Url => self.url.into(),
            Var::Title => self.title.into(),
            Var::Description => self.description.into(),
            Var::Username => self.username.into(),
            Var::Token => self.token.into(),
            Var::Tags => self.tags.join(",").into(),
            Var::Private => self.private.to_string().into(),
            Var::Public => (!self.private).to_string().into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Literal(Value),
    /// A string that is exactly one placeholder: replaced by its JSON value (tags an
    /// array, private/public a bool).
    Whole(Var),
    /// A string with placeholders inside: replaced as text.
    Text(Vec<Piece>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Var(Var),
}

/// A JSON value (or header text) with `{{placeholders}}`, compiled once.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// As written, for reports.
    written: Value,
    node: Node,
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(s)
    }
}

impl Template {
    /// Compiles `value`; placeholders outside `allowed` are refused.
    fn compile(value: &toml::Value, allowed: &[Var]) -> Result<Self, String> {
        let written = serde_json::to_value(value).map_err(|e| e.to_string())?;
        let node = compile_node(&written, allowed)?;
        Ok(Self { written, node })
    }

    fn text(s: &str, allowed: &[Var]) -> Result<Self, String> {
        Self::compile(&toml::Value::String(s.to_owned()), allowed)
    }

    pub fn render(&self, vars: &Vars<'_>) -> Value {
        render(&self.node, vars)
    }

    /// The rendered text of a string template (a header value).
    pub fn render_text(&self, vars: &Vars<'_>) -> String {
        match self.render(vars) {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// Whether placeholder `var` appears anywhere.
    pub fn uses(&self, var: Var) -> bool {
        fn walk(n: &Node, var: Var) -> bool {
            match n {
                Node::Literal(_) => false,
                Node::Whole(v) => *v == var,
                Node::Text(pieces) => pieces.contains(&Piece::Var(var)),
                Node::Array(items) => items.iter().any(|i| walk(i, var)),
                Node::Object(fields) => fields.iter().any(|(_, i)| walk(i, var)),
            }
        }
        walk(&self.node, var)
    }
}

fn compile_node(v: &Value, allowed: &[Var]) -> Result<Node, String> {
    Ok(match v {
        Value::String(s) => {
            let pieces = pieces(s, allowed)?;
            match pieces.as_slice() {
                [] => Node::Literal(v.clone()),
                [Piece::Lit(_)] => Node::Literal(v.clone()),
                [Piece::Var(var)] => Node::Whole(*var),
                _ => Node::Text(pieces),
            }
        }
        Value::Array(items) => Node::Array(items.iter().map(|i| compile_node(i, allowed)).collect::<Result<_, _>>()?),
        Value::Object(fields) => Node::Object(
            fields.iter().map(|(k, i)| Ok((k.clone(), compile_node(i, allowed)?))).collect::<Result<_, String>>()?,
        ),
        other => Node::Literal(other.clone()),
    })
}

fn pieces(s: &str, allowed: &[Var]) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let Some(len) = rest[open + 2..].find("}}") else {
            return Err(format!("unclosed placeholder in {s:?}"));
        };
        let name = rest[open + 2..open + 2 + len].trim();
        let var = Var::parse(name).filter(|v| allowed.contains(v)).ok_or_else(|| {
            let names: Vec<String> = allowed.iter().map(|v| format!("{{{{{}}}}}", v.name())).collect();
            format!("unknown placeholder `{{{{{name}}}}}` here (known: {})", names.join(", "))
        })?;
        if open > 0 {
            out.push(Piece::Lit(rest[..open].to_owned()));
        }
        out.push(Piece::Var(var));
        rest = &rest[open + 2 + len + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest.to_owned()));
    }
    Ok(out)
}

fn render(n: &Node, vars: &Vars<'_>) -> Value {
    match n {
        Node::Literal(v) => v.clone(),
        Node::Whole(var) => vars.value(*var),
        Node::Text(pieces) => {
            let mut s = String::new();
            for p in pieces {
                match p {
                    Piece::Lit(l) => s.push_str(l),
                    Piece::Var(v) => s.push_str(&vars.text(*v)),
                }
            }
            Value::String(s)
        }
        Node::Array(items) => Value::Array(items.iter().map(|i| render(i, vars)).collect()),
        Node::Object(fields) => Value::Object(fields.iter().map(|(k, i)| (k.clone(), render(i, vars))).collect()),
    }
}

// ---------------------------------------------------------------------------------
// Errors and loading.

/// Why a profile cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    /// `what` is where and what was asked for, e.g. `--profile "x"`.
    #[error("{what}: no such profile (looked for {looked}); shipped profiles: {available}")]
    NotFound { what: String, looked: String, available: String },
    #[error("{file}: cannot read the profile: {reason}")]
    Read { file: String, reason: String },
    /// Syntax, wrong type, unknown or missing key: toml's message at its span.
    #[error("{file}:{line}:{column}: {message}\n{snippet}")]
    Parse { file: String, line: usize, column: usize, message: String, snippet: String },
    #[error("{place}: {reason}")]
    Invalid { place: Box<Place>, reason: String },
}

const CREATE_VARS: &[Var] = &[Var::Url, Var::Title, Var::Description, Var::Tags, Var::Private, Var::Public, Var::Token];
const USER_VARS: &[Var] = &[Var::Username];
const HEADER_VARS: &[Var] = &[Var::Token];

struct Loader<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Loader<'_> {
    fn invalid(&self, key: &str, span: Range<usize>, reason: impl Into<String>) -> ProfileError {
        let (line, column) = line_col(self.text, span.start);
        ProfileError::Invalid {
            place: Box::new(Place { file: self.path.display().to_string(), key: key.to_owned(), line, column }),
            reason: reason.into(),
        }
    }

    fn pointer(&self, key: &str, v: &Spanned<String>) -> Result<Pointer, ProfileError> {
        Pointer::parse(v.get_ref()).map_err(|e| self.invalid(key, v.span(), e))
    }

    fn path(&self, key: &str, v: &Spanned<String>) -> Result<String, ProfileError> {
        let p = v.get_ref();
        if !p.starts_with('/') || p.contains(char::is_whitespace) {
            return Err(self.invalid(key, v.span(), format!("{p:?} must be an absolute path such as \"/api/items\"")));
        }
        Ok(p.clone())
    }

    fn method(&self, key: &str, v: Option<&Spanned<String>>) -> Result<String, ProfileError> {
        let Some(v) = v else { return Ok("POST".into()) };
        let m = v.get_ref().to_ascii_uppercase();
        if !["POST", "PUT", "PATCH"].contains(&m.as_str()) {
            return Err(self.invalid(
                key,
                v.span(),
                format!("{:?}: the method must be POST, PUT or PATCH", v.get_ref()),
            ));
        }
        Ok(m)
    }

    fn status(&self, key: &str, v: Option<&Spanned<u16>>) -> Result<u16, ProfileError> {
        let Some(v) = v else { return Ok(201) };
        if !(200..300).contains(v.get_ref()) {
            return Err(self.invalid(key, v.span(), format!("{} is not a success status (200-299)", v.get_ref())));
        }
        Ok(*v.get_ref())
    }

    fn profile(&self, f: ProfileFile) -> Result<Profile, ProfileError> {
        let name = f.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return Err(self.invalid("name", f.name.span(), "must not be empty"));
        }
        let auth = match &f.auth {
            None => Auth::None,
            Some(a) => self.auth(a)?,
        };
        let c = f.create.get_ref();
        let body = Template::compile(c.body.get_ref(), CREATE_VARS)
            .map_err(|e| self.invalid("create.body", c.body.span(), e))?;
        if !body.uses(Var::Url) {
            return Err(self.invalid(
                "create.body",
                c.body.span(),
                "must carry `{{url}}`: listeners trace each event back to its request through the URL",
            ));
        }
        let mut headers = Vec::new();
        for (k, v) in &c.headers {
            let key = format!("create.headers.{k}");
            let t = Template::text(v.get_ref(), HEADER_VARS).map_err(|e| self.invalid(&key, v.span(), e))?;
            if t.uses(Var::Token) && matches!(auth, Auth::None) {
                return Err(self.invalid(&key, v.span(), "uses `{{token}}` but [auth] is missing or kind = \"none\""));
            }
            reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| self.invalid(&key, v.span(), format!("{k:?} is not a valid header name")))?;
            headers.push((k.clone(), t));
        }
        if body.uses(Var::Token) && matches!(auth, Auth::None) {
            return Err(self.invalid(
                "create.body",
                c.body.span(),
                "uses `{{token}}` but [auth] is missing or kind = \"none\"",
            ));
        }
        let create = Create {
            method: self.method("create.method", c.method.as_ref())?,
            path: self.path("create.path", &c.path)?,
            status: self.status("create.status", c.status.as_ref())?,
            can_be_private: body.uses(Var::Private) || body.uses(Var::Public),
            headers,
            body,
            public: c.response.public.as_ref().map(|p| self.pointer("create.response.public", p)).transpose()?,
            tags: c.response.tags.as_ref().map(|p| self.pointer("create.response.tags", p)).transpose()?,
        };

        let socket = match &f.socket {
            None => SocketSpec { path: "/socket/websocket".into(), params: [("vsn".into(), "2.0.0".into())].into() },
            Some(s) => {
                let s = s.get_ref();
                let path = match &s.path {
                    Some(p) => self.path("socket.path", p)?,
                    None => "/socket/websocket".into(),
                };
                let mut params: BTreeMap<String, String> =
                    s.params.iter().map(|(k, v)| (k.clone(), v.get_ref().clone())).collect();
                match s.params.get("vsn") {
                    Some(v) if v.get_ref() != "2.0.0" => {
                        return Err(self.invalid(
                            "socket.params.vsn",
                            v.span(),
                            format!("{:?}: the simulator speaks the Phoenix V2 serializer, vsn \"2.0.0\"", v.get_ref()),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        params.insert("vsn".into(), "2.0.0".into());
                    }
                }
                SocketSpec { path, params }
            }
        };

        let t = f.topics.get_ref();
        if t.firehose.get_ref().trim().is_empty() || t.firehose.get_ref().contains("{{") {
            return Err(self.invalid(
                "topics.firehose",
                t.firehose.span(),
                "must be a topic name without placeholders",
            ));
        }
        if t.tag.get_ref().matches(TAG).count() != 1 {
            return Err(self.invalid(
                "topics.tag",
                t.tag.span(),
                "must hold `{{tag}}` exactly once, e.g. \"feed:tag:{{tag}}\"",
            ));
        }
        let topics = Topics { firehose: t.firehose.get_ref().clone(), tag: t.tag.get_ref().clone() };

        let e = f.events.get_ref();
        let names = e.names.get_ref().clone();
        if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
            return Err(self.invalid("events.names", e.names.span(), "must list at least one non-empty event name"));
        }
        let url = self.pointer("events.url", &e.url)?;
        let seq = e.seq.as_ref().map(|p| self.pointer("events.seq", p)).transpose()?;
        if let (Some(seq), Some(span)) = (&seq, e.seq.as_ref().map(Spanned::span))
            && seq.overlaps(&url)
        {
            return Err(self.invalid("events.seq", span, "must not point at or into or above events.url"));
        }
        Ok(Profile {
            name,
            source: Some(self.path.to_owned()),
            description: f.description,
            auth,
            create,
            seed_bookmarks: f.seed.bookmarks,
            socket,
            topics,
            events: Events { names, url, seq },
        })
    }

    fn auth(&self, a: &Spanned<AuthFile>) -> Result<Auth, ProfileError> {
        let a = a.get_ref();
        match a.kind.get_ref().as_str() {
            "none" => {
                for (key, present) in [
                    ("auth.path", a.path.as_ref().map(Spanned::span)),
                    ("auth.body", a.body.as_ref().map(Spanned::span)),
                    ("auth.token", a.token.as_ref().map(Spanned::span)),
                ] {
                    if let Some(span) = present {
                        return Err(self.invalid(key, span, "has no meaning with kind = \"none\""));
                    }
                }
                Ok(Auth::None)
            }
            "token" => {
                let Some(token) = &a.token else {
                    return Err(self.invalid("auth.kind", a.kind.span(), "kind = \"token\" needs `token = \"…\"`"));
                };
                if token.get_ref().trim().is_empty() {
                    return Err(self.invalid("auth.token", token.span(), "must not be empty"));
                }
                if let Some(p) = &a.path {
                    return Err(self.invalid("auth.path", p.span(), "has no meaning with kind = \"token\""));
                }
                Ok(Auth::Token { token: token.get_ref().clone() })
            }
            "users" => {
                let (Some(path), Some(body), Some(token)) = (&a.path, &a.body, &a.token) else {
                    return Err(self.invalid(
                        "auth.kind",
                        a.kind.span(),
                        "kind = \"users\" needs `path`, `body` (with {{username}}) and `token` (a JSON pointer into the response)",
                    ));
                };
                let t = Template::compile(body.get_ref(), USER_VARS).map_err(|e| self.invalid("auth.body", body.span(), e))?;
                if !t.uses(Var::Username) {
                    return Err(self.invalid("auth.body", body.span(), "must carry `{{username}}`"));
                }
                Ok(Auth::Users {
                    method: "POST".into(),
                    path: self.path("auth.path", path)?,
                    body: t,
                    status: self.status("auth.status", a.status.as_ref())?,
                    token: self.pointer("auth.token", token)?,
                })
            }
            other => Err(self.invalid(
                "auth.kind",
                a.kind.span(),
                format!("{other:?}: expected \"users\" (an account per corpus user), \"token\" (one static bearer token) or \"none\""),
            )),
        }
    }
}

impl Profile {
    /// The firehose app's profile, compiled in: the default.
    pub fn firehose() -> Arc<Profile> {
        Arc::clone(&FIREHOSE)
    }

    /// Finds a profile by path, or by name under `fixtures/profiles/`. `origin` names
    /// where the name was given (`--profile`, or a scenario's place) for messages.
    pub fn find(name: &str, origin: &str, relative_to: Option<&Path>) -> Result<PathBuf, ProfileError> {
        let direct = Path::new(name);
        if name.ends_with(".toml") || name.contains(std::path::MAIN_SEPARATOR) {
            if direct.is_relative()
                && let Some(base) = relative_to
                && base.join(direct).is_file()
            {
                return Ok(base.join(direct));
            }
            return Ok(direct.to_owned());
        }
        let candidates: Vec<PathBuf> = dirs().into_iter().map(|d| d.join(format!("{name}.toml"))).collect();
        if let Some(found) = candidates.iter().find(|p| p.is_file()) {
            return Ok(found.clone());
        }
        Err(ProfileError::NotFound {
            what: format!("{origin} {name:?}"),
            looked: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            available: shipped().join(", "),
        })
    }

    /// The profile of a run: `--profile` when given, else the scenario's `profile`
    /// key (relative paths from the scenario's folder first), else the built-in one.
    pub fn for_run(
        flag: Option<&str>,
        scenario: Option<&crate::plan::scenario::Scenario>,
    ) -> Result<Profile, ProfileError> {
        if let Some(name) = flag {
            return Self::load(&Self::find(name, "--profile", None)?);
        }
        let Some((s, name)) = scenario.and_then(|s| s.file.profile.as_ref().map(|p| (s, p))) else {
            return Ok(Self::firehose().as_ref().clone());
        };
        let origin = s.place("profile", name.span()).to_string();
        Self::load(&Self::find(name.get_ref(), &origin, s.path.parent())?)
    }

    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProfileError::Read { file: path.display().to_string(), reason: e.to_string() })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Profile, ProfileError> {
        let file: ProfileFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = line_col(text, span.start);
            ProfileError::Parse {
                file: path.display().to_string(),
                line,
                column,
                message: e.message().trim().to_owned(),
                snippet: snippet(text, span),
            }
        })?;
        Loader { path, text }.profile(file)
    }

    /// `<socket path>?<params>`, e.g. `/socket/websocket?vsn=2.0.0`.
    pub fn socket_path(&self) -> String {
        let query: Vec<String> =
            self.socket.params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        format!("{}?{}", self.socket.path, query.join("&"))
    }

    /// Whether listeners check duplicates, reordering and gaps (the payload has a seq).
    pub fn checks_seq(&self) -> bool {
        self.events.seq.is_some()
    }

    /// The lines `run` prints under "profile" in the plan.
    pub fn describe(&self) -> Vec<String> {
        let source = self.source.as_ref().map_or_else(|| "built in".to_owned(), |p| p.display().to_string());
        let auth = match &self.auth {
            Auth::Users { path, .. } => format!("one account per corpus user (POST {path})"),
            Auth::Token { .. } => "one static bearer token".into(),
            Auth::None => "none".into(),
        };
        let seq = match &self.events.seq {
            Some(p) => format!("seq at {}", p.text),
            None => "no seq: duplicate/reorder/gap checks off".into(),
        };
        let public = self.create.public.as_ref().map_or("as requested".into(), |p| format!("from {}", p.text));
        let tags = self.create.tags.as_ref().map_or("as sent".into(), |p| format!("from {}", p.text));
        vec![
            format!("{} ({source})", self.name),
            format!(
                "create {} {} -> {}, public {public}, tags {tags}",
                self.create.method, self.create.path, self.create.status
            ),
            format!("auth {auth}; seed items: {}", if self.seed_bookmarks { "yes" } else { "no" }),
            format!("socket {} topics {:?} / {:?}", self.socket.path, self.topics.firehose, self.topics.tag),
            format!("events {} (url at {}, {seq})", self.events.names.join(", "), self.events.url.text),
        ]
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn dirs() -> Vec<PathBuf> {
    let here = PathBuf::from(PROFILE_DIR);
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(PROFILE_DIR);
    let mut dirs = vec![here];
    if built.is_dir() {
        dirs.push(built);
    }
    dirs
}

/// Names of the profiles found where `find` looks.
pub fn shipped() -> Vec<String> {
    let mut names: Vec<String> = dirs()
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".toml").map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.describe().join("; "))
    }
}

// ---------------------------------------------------------------------------------
// Picking the URL and seq out of a payload.

/// Walks a payload once, following the segments of two pointers.
struct Pick<'p> {
    url: Option<&'p [String]>,
    seq: Option<&'p [String]>,
}

/// A string, borrowed from the input unless it had escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> DeserializeSeed<'de> for Pick<'_> {
    type Value = Picked<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Picked<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Picked<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Picked<'de>, A::Error> {
        let mut out = Picked::default();
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            let url = self.url.filter(|p| p.first().is_some_and(|s| *s == key));
            let seq = self.seq.filter(|p| p.first().is_some_and(|s| *s == key));
            match (url, seq) {
                (Some([_]), _) => out.url = Some(map.next_value::<CowStr<'de>>()?.0),
                (_, Some([_])) => out.seq = Some(map.next_value::<u64>()?),
                (None, None) => {
                    map.next_value::<IgnoredAny>()?;
                }
                (url, seq) => {
                    let inner = map.next_value_seed(Pick { url: url.map(|p| &p[1..]), seq: seq.map(|p| &p[1..]) })?;
                    out.url = inner.url.or(out.url);
                    out.seq = inner.seq.or(out.seq);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
