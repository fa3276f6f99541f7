//! Routes: which MQTT topics go to which log topic, and what the record key is.
//!
//! A route has an MQTT topic filter (`+` matches one level, `#` the rest, as in
//! subscriptions), a target log topic and a key template. Routes are tried in the order the
//! config lists them; the first match wins.

use super::config::RouteConfig;

/// Why a topic filter is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The filter is empty.
    #[error("a topic filter cannot be empty")]
    Empty,
    /// `#` is not alone in the last level.
    #[error("`#` must be the last level, alone")]
    MisplacedHash,
    /// `+` shares a level with other characters.
    #[error("`+` must fill a whole level")]
    MisplacedPlus,
    /// The filter contains U+0000.
    #[error("a topic filter cannot contain U+0000")]
    Nul,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Exact(String),
    /// `+`
    One,
    /// `#`
    Rest,
}

/// A parsed MQTT topic filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    levels: Vec<Level>,
}

impl TopicFilter {
    /// Parse and check a filter such as `sensors/+/temp` or `sensors/#`.
    pub fn parse(filter: &str) -> Result<TopicFilter, FilterError> {
        if filter.is_empty() {
            return Err(FilterError::Empty);
        }
        if filter.contains('\0') {
            return Err(FilterError::Nul);
        }
        let parts: Vec<&str> = filter.split('/').collect();
        let mut levels = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let level = match *part {
                "#" if i + 1 == parts.len() => Level::Rest,
                "#" => return Err(FilterError::MisplacedHash),
                "+" => Level::One,
                p if p.contains('#') => return Err(FilterError::MisplacedHash),
                p if p.contains('+') => return Err(FilterError::MisplacedPlus),
                p => Level::Exact(p.to_string()),
            };
            levels.push(level);
        }
        Ok(TopicFilter { levels })
    }

    /// Whether `topic` (a PUBLISH topic name) matches. Topics starting with `$` are not
    /// matched by a filter starting with a wildcard, as MQTT requires.
    pub fn matches(&self, topic: &str) -> bool {
        if topic.starts_with('$') && matches!(self.levels.first(), Some(Level::One | Level::Rest)) {
            return false;
        }
        let mut parts = topic.split('/');
        for level in &self.levels {
            match level {
                // `#` also matches the parent: `a/#` matches `a`.
                Level::Rest => return true,
                Level::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Level::Exact(want) => match parts.next() {
                    Some(part) if part == want => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

/// Why a key template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{` without its `}`.
    #[error("`{{` without a closing `}}` (write `{{{{` for a literal brace)")]
    Unclosed,
    /// A `}` that closes nothing.
    #[error("`}}` without an opening `{{` (write `}}}}` for a literal brace)")]
    Unopened,
    /// An unknown placeholder.
    #[error("unknown placeholder `{{{0}}}`: use {{topic}}, {{client_id}} or a level number {{1}}, {{2}}…")]
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Topic,
    ClientId,
    /// 1-based topic level.
    TopicLevel(u16),
}

/// A record key template: literal text with `{topic}`, `{client_id}` and `{N}` (the Nth
/// level of the MQTT topic, from 1; empty when the topic is shorter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<Part>,
}

impl Default for KeyTemplate {
    /// `{topic}`: the MQTT topic is the key.
    fn default() -> Self {
        KeyTemplate {
            parts: vec![Part::Topic],
        }
    }
}

impl KeyTemplate {
    /// Parse a template; `{{` and `}}` are literal braces.
    pub fn parse(template: &str) -> Result<KeyTemplate, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(TemplateError::Unopened),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(TemplateError::Unclosed),
                        }
                    }
                    let part = match name.as_str() {
                        "topic" => Part::Topic,
                        "client_id" => Part::ClientId,
                        n => match n.parse::<u16>() {
                            Ok(level) if level >= 1 => Part::TopicLevel(level),
                            _ => return Err(TemplateError::Unknown(name)),
                        },
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(KeyTemplate { parts })
    }

    /// Write the key for a message on `topic` from `client_id` into `out` (cleared first).
    pub fn render(&self, topic: &str, client_id: &str, out: &mut Vec<u8>) {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Part::Topic => out.extend_from_slice(topic.as_bytes()),
                Part::ClientId => out.extend_from_slice(client_id.as_bytes()),
                Part::TopicLevel(n) => {
                    if let Some(level) = topic.split('/').nth(usize::from(*n) - 1) {
                        out.extend_from_slice(level.as_bytes());
                    }
                }
            }
        }
    }
}

/// One route, ready to match.
#[derive(Debug, Clone)]
pub struct Route {
    /// The MQTT filter.
    pub filter: TopicFilter,
    /// The filter as configured (for logs and metrics).
    pub filter_text: String,
    /// The log topic.
    pub topic: String,
    /// The record key.
    pub key: KeyTemplate,
    /// Whether MQTT metadata goes into headers.
    pub headers: bool,
}

impl Route {
    /// Build a route from its (validated) config.
    pub fn from_config(config: &RouteConfig) -> Result<Route, String> {
        Ok(Route {
            filter: TopicFilter::parse(&config.filter).map_err(|e| e.to_string())?,
            filter_text: config.filter.clone(),
            topic: config.topic.clone(),
            key: match &config.key {
                Some(key) => KeyTemplate::parse(key).map_err(|e| e.to_string())?,
                None => KeyTemplate::default(),
            },
            headers: config.headers,
        })
    }

    /// A route taking everything (`#`) to `topic`: a bridge with its own target topic.
    pub fn catch_all(topic: &str, key: Option<&str>) -> Result<Route, String> {
        Route::from_config(&RouteConfig {
            filter: "#".into(),
            topic: topic.into(),
            key: key.map(str::to_string),
            headers: true,
        })
    }
}

/// The routes in config order; the first match wins.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Wrap routes (in priority order).
    pub fn new(routes: Vec<Route>) -> Routes {
        Routes { routes }
    }

    /// The first route matching `topic`, with its index (for per-route metrics).
    pub fn find(&self, topic: &str) -> Option<(usize, &Route)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.filter.matches(topic))
    }

    /// Every route, in order.
    pub fn all(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(filter: &str, topic: &str) -> bool {
        TopicFilter::parse(filter).unwrap().matches(topic)
    }

    #[test]
    fn filters_match_as_the_mqtt_spec_says() {
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon"
        ));
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "anything/at/all"));
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("+/tennis/#", "sport/tennis"));
        assert!(!matches("sensors", "sensors/a"));
        assert!(matches("sensors", "sensors"));
        assert!(!matches("Sensors", "sensors"));
        // `$` topics are not matched by leading wildcards.
        assert!(!matches("#", "$SYS/broker/load"));
        assert!(!matches("+/broker/load", "$SYS/broker/load"));
        assert!(matches("$SYS/#", "$SYS/broker/load"));
    }

    #[test]
    fn bad_filters_are_refused() {
        assert_eq!(TopicFilter::parse(""), Err(FilterError::Empty));
        assert_eq!(TopicFilter::parse("a/#/b"), Err(FilterError::MisplacedHash));
        assert_eq!(TopicFilter::parse("a#"), Err(FilterError::MisplacedHash));
        assert_eq!(TopicFilter::parse("a/b+"), Err(FilterError::MisplacedPlus));
        assert!(TopicFilter::parse("+/+/#").is_ok());
    }

    fn render(template: &str, topic: &str, client: &str) -> String {
        let mut out = Vec::new();
        KeyTemplate::parse(template)
            .unwrap()
            .render(topic, client, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn key_templates_render() {
        assert_eq!(
            render("{topic}", "sensors/kitchen/temp", "c1"),
            "sensors/kitchen/temp"
        );
        assert_eq!(render("{client_id}", "a/b", "dev-7"), "dev-7");
        assert_eq!(render("{2}", "sensors/kitchen/temp", "c1"), "kitchen");
        assert_eq!(
            render("{2}-{3}@{client_id}", "sensors/kitchen/temp", "c1"),
            "kitchen-temp@c1"
        );
        assert_eq!(render("{9}", "a/b", "c"), "");
        assert_eq!(render("{{literal}}:{1}", "a/b", "c"), "{literal}:a");
        let mut out = Vec::new();
        KeyTemplate::default().render("x/y", "c", &mut out);
        assert_eq!(out, b"x/y");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert_eq!(KeyTemplate::parse("{topic"), Err(TemplateError::Unclosed));
        assert_eq!(KeyTemplate::parse("topic}"), Err(TemplateError::Unopened));
        assert_eq!(
            KeyTemplate::parse("{0}"),
            Err(TemplateError::Unknown("0".into()))
        );
        assert_eq!(
            KeyTemplate::parse("{host}"),
            Err(TemplateError::Unknown("host".into()))
        );
    }

    #[test]
    fn first_matching_route_wins() {
        let route = |filter: &str, topic: &str| {
            Route::from_config(&RouteConfig {
                filter: filter.into(),
                topic: topic.into(),
                key: None,
                headers: true,
            })
            .unwrap()
        };
        let routes = Routes::new(vec![
            route("sensors/kitchen/#", "kitchen"),
            route("sensors/#", "sensors"),
            route("#", "everything"),
        ]);
        assert_eq!(
            routes
                .find("sensors/kitchen/temp")
                .map(|(i, r)| (i, r.topic.as_str())),
            Some((0, "kitchen"))
        );
        assert_eq!(
            routes
                .find("sensors/hall/temp")
                .map(|(i, r)| (i, r.topic.as_str())),
            Some((1, "sensors"))
        );
        assert_eq!(routes.find("other").map(|(i, _)| i), Some(2));
        assert!(routes.find("$SYS/x").is_none());
    }
}
