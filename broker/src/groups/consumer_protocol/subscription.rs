//! What a KIP-848 member subscribes to: the cluster's topics as a group
//! sees them (`TopicCatalog`) and a subscription regular expression
//! (`TopicRegex`), matched against whole topic names.

/// Longest subscription regex accepted; bounds compile time and memory.
pub const MAX_REGEX_LEN: usize = 4096;

/// What a group needs to know about the cluster's topics.
pub trait TopicCatalog {
    /// Partitions of `topic`; None when there is no such topic.
    fn partition_count(&self, topic: &str) -> Option<i32>;
    /// Every topic name, for regex subscriptions.
    fn topic_names(&self) -> Vec<String>;
}

impl TopicCatalog for crate::metadata::ClusterState {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.topic(topic).map(|m| m.partitions.len() as i32)
    }

    fn topic_names(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }
}

/// Tests: topic name → partition count.
#[cfg(test)]
impl TopicCatalog for std::collections::BTreeMap<String, i32> {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.get(topic).copied()
    }

    fn topic_names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// A subscription regex, compiled once per change. Kafka (RE2/J) matches
/// it against the whole topic name, so it is anchored at both ends.
#[derive(Debug, Clone)]
pub struct TopicRegex {
    pub source: String,
    matcher: regex::Regex,
}

impl TopicRegex {
    pub fn new(source: &str) -> Result<Self, String> {
        if source.len() > MAX_REGEX_LEN {
            return Err(format!("regex longer than {MAX_REGEX_LEN} bytes"));
        }
        let matcher = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            source: source.to_string(),
            matcher,
        })
    }

    pub fn matches(&self, topic: &str) -> bool {
        self.matcher.is_match(topic)
    }
}

impl PartialEq for TopicRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
