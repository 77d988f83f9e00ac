//! Who is asking: the client class of a request, decided at extraction from its user agent.
//!
//! First match wins: an empty user agent (or `-`) is `unknown`; then the client rules
//! ([`rules.tsv`](rules.tsv), replaceable with `--client-rules FILE`) name known S3 and HTTP
//! tools with their family; then the COUNTER robot list makes a `robot` (applied only after the
//! rules, since it flags Botocore, aiobotocore, python, curl and Wget); a Mozilla-compatible agent
//! with a layout engine is a `browser`; any other agent is a `tool` of family `other` (a script
//! that names itself). Only the class and family are kept, never the user agent.

use std::path::Path;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// The bundled client rules.
const RULES: &str = include_str!("rules.tsv");
/// The bundled COUNTER robot list.
const ROBOTS: &str = include_str!("counter_robots.txt");

/// The class of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ClientClass {
    /// No user agent.
    Unknown,
    /// A web browser.
    Browser,
    /// A known S3 or HTTP client, or a script.
    Tool,
    /// A crawler.
    Robot,
}

impl ClientClass {
    /// Every class, in the order tables list them.
    pub(crate) const ALL: [ClientClass; 4] = [
        ClientClass::Browser,
        ClientClass::Tool,
        ClientClass::Robot,
        ClientClass::Unknown,
    ];

    /// Its name in tables, dumps and the store.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ClientClass::Unknown => "unknown",
            ClientClass::Browser => "browser",
            ClientClass::Tool => "tool",
            ClientClass::Robot => "robot",
        }
    }

    /// The class of a name written by [`Self::as_str`].
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.as_str() == name)
    }
}

/// A client: its class, and its family when the rules name one (`boto3`, `rclone`, `other`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Client {
    /// The class.
    pub class: ClientClass,
    /// The family (empty when the class alone is known).
    pub family: String,
}

impl Client {
    /// The client of requests without a user agent (and of those extracted before clients were
    /// recorded).
    pub(crate) fn unknown() -> Self {
        Client {
            class: ClientClass::Unknown,
            family: String::new(),
        }
    }

    /// Class and family as shown in dumps: `tool/boto3`, `browser`.
    pub(crate) fn label(&self) -> String {
        if self.family.is_empty() {
            self.class.as_str().to_owned()
        } else {
            format!("{}/{}", self.class.as_str(), self.family)
        }
    }
}

/// A rule file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file} line {line}: {why}")]
pub(crate) struct RuleError {
    file: String,
    line: usize,
    why: String,
}

/// The rules that classify user agents.
#[derive(Debug)]
pub(crate) struct ClientRules {
    rules: Vec<(Regex, Client)>,
    robots: RegexSet,
    browser: Regex,
}

impl ClientRules {
    /// The bundled rules.
    pub(crate) fn bundled() -> Result<Self, RuleError> {
        Self::from_texts(("rules.tsv", RULES), ("counter_robots.txt", ROBOTS))
    }

    /// The rules of `file` (same format as the bundled `rules.tsv`, which it replaces) before
    /// the bundled robot list; the bundled rules without one.
    pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let Some(file) = file else {
            return Ok(Self::bundled()?);
        };
        let text = std::fs::read_to_string(file)
            .map_err(|error| anyhow::anyhow!("client rules {}: {error}", file.display()))?;
        let name = file.display().to_string();
        Ok(Self::from_texts(
            (&name, &text),
            ("counter_robots.txt", ROBOTS),
        )?)
    }

    fn from_texts(rules: (&str, &str), robots: (&str, &str)) -> Result<Self, RuleError> {
        let error = |file: &str, line: usize, why: String| RuleError {
            file: file.to_owned(),
            line,
            why,
        };
        let mut parsed = Vec::new();
        for (number, line) in rules.1.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() || line == "pattern\tclass\tfamily" {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [pattern, class, family] = fields[..] else {
                let why = "expected pattern<TAB>class<TAB>family".to_owned();
                return Err(error(rules.0, number + 1, why));
            };
            let class = ClientClass::parse(class.trim())
                .filter(|class| *class != ClientClass::Unknown)
                .ok_or_else(|| {
                    let why = format!("class {class:?} is not tool, browser or robot");
                    error(rules.0, number + 1, why)
                })?;
            let regex = RegexBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .map_err(|e| error(rules.0, number + 1, e.to_string()))?;
            let family = family.trim().to_owned();
            if family.chars().any(char::is_control) {
                let why = "the family holds a control character".to_owned();
                return Err(error(rules.0, number + 1, why));
            }
            parsed.push((regex, Client { class, family }));
        }
        let patterns: Vec<&str> = robots
            .1
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .collect();
        let robots = RegexSetBuilder::new(&patterns)
            .case_insensitive(true)
            .build()
            .map_err(|e| error(robots.0, 0, e.to_string()))?;
        let browser = Regex::new(r"^Mozilla/\d.*(Gecko/|AppleWebKit/|Trident/|Presto/|like Gecko)")
            .expect("a valid pattern");
        Ok(Self {
            rules: parsed,
            robots,
            browser,
        })
    }

    /// The client of a user agent as written in a log (not always UTF-8).
    pub(crate) fn classify_bytes(&self, user_agent: &[u8]) -> Client {
        self.classify(&String::from_utf8_lossy(user_agent))
    }

    /// The client of a user agent.
    pub(crate) fn classify(&self, user_agent: &str) -> Client {
        let agent = user_agent.trim();
        let client = |class, family: &str| Client {
            class,
            family: family.to_owned(),
        };
        if agent.is_empty() || agent == "-" {
            return client(ClientClass::Unknown, "");
        }
        if let Some((_, found)) = self.rules.iter().find(|(regex, _)| regex.is_match(agent)) {
            return found.clone();
        }
        if self.robots.is_match(agent) {
            return client(ClientClass::Robot, "");
        }
        if self.browser.is_match(agent) {
            return client(ClientClass::Browser, "");
        }
        client(ClientClass::Tool, "other")
    }
}

#[cfg(test)]
mod tests;
