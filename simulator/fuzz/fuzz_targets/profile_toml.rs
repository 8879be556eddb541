//! Target profiles: any text, read as a profile, must give a checked profile or an
//! error that renders — never a panic. A profile is then used as a run uses it: its
//! templates rendered, its socket path built, its topic names made and read back, and
//! event payloads picked apart by its pointers (the input itself is tried as one).

#![no_main]

use std::path::Path;

use firehose_sim::plan::profile::{Auth, Profile, Vars};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let profile = match Profile::parse(Path::new("fuzz.toml"), text) {
        Ok(profile) => profile,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    let _ = (profile.describe(), profile.socket_path(), profile.to_string(), profile.checks_seq());
    let _ = serde_json::to_string(&profile).expect("a profile serializes");
    let tags = ["rust".to_owned(), "a,b".to_owned()];
    let vars = Vars {
        url: "https://example.com/x?y=1",
        title: "t \"q\"",
        description: "{{url}}",
        tags: &tags,
        private: true,
        username: "alice",
        token: "tok",
    };
    let _ = profile.create.body.render(&vars);
    for (_, header) in &profile.create.headers {
        let _ = header.render_text(&vars);
    }
    if let Auth::Users { body, .. } = &profile.auth {
        let _ = body.render(&vars);
    }
    for tag in ["elixir", "", "{{tag}}", "a:b"] {
        let topic = profile.topics.tag_topic(tag);
        assert_eq!(profile.topics.tag_of(&topic), Some(tag), "{topic:?} from {tag:?}");
    }
    let _ = profile.topics.tag_of(&profile.topics.firehose);
    let _ = profile.events.pick(text);
    let payload = serde_json::json!({"data": {"url": "https://e.x", "seq": 3}, "url": "u", "seq": 1});
    let _ = profile.events.pick(&payload.to_string());
    if let Some(p) = &profile.create.public {
        let _ = p.get(&payload);
    }
});
