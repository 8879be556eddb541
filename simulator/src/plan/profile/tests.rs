//! Tests of target profiles: the shipped examples parse, and every malformed profile is
//! refused with the key and the reason.

use super::*;

fn parse(text: &str) -> Result<Profile, ProfileError> {
    Profile::parse(Path::new("p.toml"), text)
}

const OTHER: &str = r#"
name = "other"

[auth]
kind = "token"
token = "s3cret"

[create]
path = "/v1/posts"
headers = { authorization = "Bearer {{token}}", x-client = "sim" }
body = { post = { link = "{{url}}", headline = "t: {{title}}", labels = "{{tags}}", hidden = "{{private}}" } }

[create.response]
public = "/post/is_public"

[topics]
firehose = "feed:all"
tag = "feed:tag:{{tag}}"

[events]
names = ["post:new"]
url = "/data/link"
seq = "/meta/n"
"#;

#[test]
fn the_shipped_firehose_profile_is_the_built_in_default() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/profiles/firehose.toml");
    let mut loaded = Profile::load(&file).unwrap();
    assert_eq!(loaded.source.as_deref(), Some(file.as_path()));
    loaded.source = None;
    assert_eq!(&loaded, Profile::firehose().as_ref());
    assert_eq!(Profile::find("firehose", "--profile", None).unwrap().file_name().unwrap(), "firehose.toml");
}

#[test]
fn the_firehose_body_is_what_the_app_takes() {
    let p = Profile::firehose();
    let tags = vec!["rust".to_owned(), "db".to_owned()];
    let vars = Vars {
        url: "https://e.com/#sim-a-1",
        title: "T",
        description: "D",
        tags: &tags,
        private: true,
        ..Vars::default()
    };
    assert_eq!(
        p.create.body.render(&vars),
        serde_json::json!({"bookmark": {"title": "T", "url": "https://e.com/#sim-a-1", "description": "D", "public": false, "tags": ["rust", "db"]}})
    );
    let auth = Vars { token: "tok", ..vars };
    assert_eq!(p.create.headers[0].0, "authorization");
    assert_eq!(p.create.headers[0].1.render_text(&auth), "Bearer tok");
    let Auth::Users { body, path, token, .. } = &p.auth else { panic!("{:?}", p.auth) };
    assert_eq!((path.as_str(), token.text.as_str()), ("/api/users", "/data/token"));
    assert_eq!(body.render(&Vars { username: "ann", ..Vars::default() }), serde_json::json!({"username": "ann"}));
    assert_eq!(p.socket_path(), "/socket/websocket?vsn=2.0.0");
    assert!(p.checks_seq() && p.create.can_be_private);
}

#[test]
fn another_app_maps_onto_the_same_run() {
    let p = parse(OTHER).unwrap();
    assert_eq!((p.create.method.as_str(), p.create.path.as_str(), p.create.status), ("POST", "/v1/posts", 201));
    assert_eq!(p.auth, Auth::Token { token: "s3cret".into() });
    assert!(!serde_json::to_string(&p).unwrap().contains("s3cret"), "the token stays out of reports");
    let tags = vec!["a".to_owned(), "b".to_owned()];
    let vars = Vars { url: "u", title: "x", tags: &tags, private: false, token: "s3cret", ..Vars::default() };
    assert_eq!(
        p.create.body.render(&vars),
        serde_json::json!({"post": {"link": "u", "headline": "t: x", "labels": ["a", "b"], "hidden": false}})
    );
    assert_eq!(p.topics.tag_topic("rust"), "feed:tag:rust");
    assert_eq!(p.topics.tag_of("feed:tag:rust"), Some("rust"));
    assert_eq!(p.topics.tag_of("feed:all"), None);
    assert!(p.events.counts("post:new") && !p.events.counts("bookmark_created"));
    assert!(p.describe().join("\n").contains("/v1/posts"));
}

#[test]
fn pointers_pick_nested_fields_in_one_pass_borrowing_when_they_can() {
    let p = parse(OTHER).unwrap();
    let picked = p
        .events
        .pick(r#"{"x": [1, {"link": "no"}], "meta": {"n": 7, "z": null}, "data": {"link": "https://e/#sim-a-3"}}"#)
        .unwrap();
    assert!(matches!(picked.url, Some(Cow::Borrowed("https://e/#sim-a-3"))), "{picked:?}");
    assert_eq!(picked.seq, Some(7));
    let escaped = p.events.pick(r#"{"data": {"link": "a\/b"}}"#).unwrap();
    assert_eq!((escaped.url.as_deref(), escaped.seq), (Some("a/b"), None));
    assert!(p.events.pick(r#"{"data": {"link": 5}}"#).is_err());
    assert!(p.events.pick(r#"{"meta": {"n": "seven"}}"#).is_err());
    let firehose = Profile::firehose();
    let picked = firehose.events.pick(r#"{"id": 1, "url": "u", "tags": ["t"], "seq": 9}"#).unwrap();
    assert_eq!((picked.url.as_deref(), picked.seq), (Some("u"), Some(9)));
}

#[test]
fn bad_profiles_say_where_and_what() {
    let err = |text: &str| parse(text).unwrap_err().to_string();
    let unknown = err(&OTHER.replace("[topics]\n", "[topics]\nfirehouse = \"x\"\n"));
    assert!(unknown.starts_with("p.toml:") && unknown.contains("unknown field `firehouse`"), "{unknown}");
    let wrong_type = err(&OTHER.replace("path = \"/v1/posts\"", "path = 5"));
    assert!(wrong_type.contains("p.toml:9:8") && wrong_type.contains("invalid type"), "{wrong_type}");
    let placeholder = err(&OTHER.replace("{{title}}", "{{titel}}"));
    assert!(placeholder.contains("create.body: unknown placeholder `{{titel}}`"), "{placeholder}");
    let no_url = err(&OTHER.replace("{{url}}", "x"));
    assert!(no_url.contains("create.body: must carry `{{url}}`"), "{no_url}");
    let pointer = err(&OTHER.replace("\"/meta/n\"", "\"meta.n\""));
    assert!(pointer.contains("p.toml:23:7: events.seq: \"meta.n\" is not a JSON pointer"), "{pointer}");
    let tag = err(&OTHER.replace("feed:tag:{{tag}}", "feed:tag"));
    assert!(tag.contains("topics.tag: must hold `{{tag}}` exactly once"), "{tag}");
    let kind = err(&OTHER.replace("kind = \"token\"", "kind = \"oauth\""));
    assert!(kind.contains("p.toml:5:8: auth.kind: \"oauth\": expected \"users\""), "{kind}");
    let no_auth = err(&OTHER.replace("[auth]\nkind = \"token\"\ntoken = \"s3cret\"\n", ""));
    assert!(no_auth.contains("create.headers.authorization: uses `{{token}}` but [auth] is missing"), "{no_auth}");
    let status = err(&OTHER.replace("path = \"/v1/posts\"", "path = \"/v1/posts\"\nstatus = 404"));
    assert!(status.contains("create.status: 404 is not a success status"), "{status}");
    let missing = err("name = \"x\"\n");
    assert!(missing.contains("missing field"), "{missing}");
    let overlap = err(&OTHER.replace("\"/meta/n\"", "\"/data/link/n\""));
    assert!(overlap.contains("events.seq: must not point"), "{overlap}");
}
