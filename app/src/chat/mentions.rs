//! `@username` mentions in a message body.
//!
//! A mention is `@` followed by a username (`[a-z0-9_]`, matched case-insensitively),
//! where the `@` does not follow a word character (so `a@b.com` mentions nobody).
//! Which mentions notify anyone is the room's business: only members are looked up.

/// The distinct usernames mentioned in `body`, lowercased, in order of first mention.
pub fn mentioned(body: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let bytes = body.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@' && (i == 0 || !word(bytes[i - 1])) {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && word(bytes[end]) {
                end += 1;
            }
            // Usernames are 3 to 32 characters (accounts::validate).
            if (3..=32).contains(&(end - start)) {
                let name = body[start..end].to_ascii_lowercase();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::mentioned;

    #[test]
    fn finds_mentions() {
        assert_eq!(mentioned("hi @alice and @Bob_2, @alice again"), vec!["alice", "bob_2"]);
        assert_eq!(mentioned("mail a@bob.com"), Vec::<String>::new());
        assert_eq!(mentioned("@al"), Vec::<String>::new());
        assert_eq!(mentioned("(@carol)"), vec!["carol"]);
        assert_eq!(mentioned("@@dave é@erin"), vec!["dave", "erin"]);
        assert_eq!(mentioned("@"), Vec::<String>::new());
    }
}
