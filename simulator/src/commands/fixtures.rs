//! `firehose-sim fixtures`: generate a corpus and write it to disk.

use std::path::PathBuf;

use anyhow::Context;

use crate::fixtures::generate;

/// Generate the Reddit-style fixture corpus (deterministic for a given seed and size).
#[derive(clap::Args, Debug)]
pub struct FixturesArgs {
    /// Seed for the generator; the committed corpus uses 42.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of link posts to generate.
    #[arg(long, default_value_t = 2000)]
    pub links: usize,
    /// Where to write the corpus JSON.
    #[arg(long, default_value = "fixtures/corpus.json")]
    pub out: PathBuf,
}

/// Generates, validates and saves the corpus, then prints a one-line summary.
pub fn run_cli(args: &FixturesArgs) -> anyhow::Result<()> {
    let corpus = generate(args.seed, args.links);
    corpus.validate().context("the generator produced an invalid corpus (a bug)")?;
    corpus.save(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "fixtures: wrote {} ({bytes} bytes): {} links, {} tags, {} users, {} chat lines, seed {}",
        args.out.display(),
        corpus.links.len(),
        corpus.tags.len(),
        corpus.users.len(),
        corpus.chat_lines.len(),
        corpus.seed,
    );
    Ok(())
}
