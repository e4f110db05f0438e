//! Spin's HTTP routing: exact routes, `:name` segments, a trailing `/...` wildcard; an exact route beats
//! any wildcard, and among candidates of one kind the most specific (longest) one wins.

use std::cmp::Reverse;

/// A compiled route pattern and the component it leads to.
#[derive(Debug, Clone)]
pub struct Route {
    /// The pattern as the manifest wrote it, e.g. `/v1/items/:id` or `/static/...`.
    pub pattern: String,
    /// The component id.
    pub component: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// The outcome of matching a path.
#[derive(Debug, Clone)]
pub struct RouteMatch<'a> {
    /// The route that matched.
    pub route: &'a Route,
    /// `:name` captures, in pattern order.
    pub params: Vec<(String, String)>,
    /// The part of the path the wildcard matched (`""` for exact routes), with its leading `/`.
    pub path_info: String,
}

impl Route {
    /// Compiles `pattern` (which must start with `/`).
    pub fn new(pattern: &str, component: &str) -> Self {
        let (base, wildcard) = match pattern.strip_suffix("/...") {
            Some(base) => (base, true),
            None if pattern == "/..." => ("", true),
            None => (pattern, false),
        };
        let segments = split(base)
            .map(|s| match s.strip_prefix(':') {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            })
            .collect();
        Self {
            pattern: pattern.to_string(),
            component: component.to_string(),
            segments,
            wildcard,
        }
    }

    /// The route without its `/...` suffix (Spin's `spin-component-route`).
    pub fn base(&self) -> &str {
        if self.wildcard {
            let b = self.pattern.trim_end_matches("/...");
            if b.is_empty() { "" } else { b }
        } else {
            &self.pattern
        }
    }

    /// Whether the pattern ends in `/...`.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    fn matches(&self, path: &[&str]) -> Option<(Vec<(String, String)>, String)> {
        if path.len() < self.segments.len() || (!self.wildcard && path.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(path) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), (*part).to_string())),
            }
        }
        let rest = &path[self.segments.len()..];
        let info = if rest.is_empty() {
            String::new()
        } else {
            format!("/{}", rest.join("/"))
        };
        Some((params, info))
    }

    /// The pattern with parameter names erased: two routes of one shape match the same paths.
    fn shape(&self) -> (Vec<Option<&str>>, bool) {
        let segs = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => Some(l.as_str()),
                Segment::Param(_) => None,
            })
            .collect();
        (segs, self.wildcard)
    }

    /// Ordering key: exact routes first, then more segments, then more literal segments.
    fn specificity(&self) -> (bool, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (!self.wildcard, self.segments.len(), literals)
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// All routes of an application, ordered by precedence.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds a router; fails on two identical patterns, as Spin does.
    pub fn new(routes: Vec<Route>) -> anyhow::Result<Self> {
        let mut routes = routes;
        routes.sort_by_key(|r| Reverse(r.specificity()));
        for (i, a) in routes.iter().enumerate() {
            if let Some(b) = routes[i + 1..].iter().find(|b| b.shape() == a.shape()) {
                anyhow::bail!(
                    "duplicate routes {:?} ({}) and {:?} ({})",
                    a.pattern,
                    a.component,
                    b.pattern,
                    b.component
                );
            }
        }
        Ok(Self { routes })
    }

    /// The routes in precedence order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route serving `path`.
    pub fn find(&self, path: &str) -> Option<RouteMatch<'_>> {
        let parts: Vec<&str> = split(path).collect();
        self.routes.iter().find_map(|route| {
            route.matches(&parts).map(|(params, path_info)| RouteMatch {
                route,
                params,
                path_info,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(vec![
            Route::new("/...", "fallback"),
            Route::new("/v1/items", "list"),
            Route::new("/v1/items/:id", "one"),
            Route::new("/v1/items/:id/parts", "parts"),
            Route::new("/v1/items/special", "special"),
            Route::new("/v1/...", "v1"),
            Route::new("/v1/items/:id/x/...", "deep"),
        ])
        .unwrap()
    }

    fn find(path: &str) -> (String, Vec<(String, String)>, String) {
        let r = router();
        let m = r.find(path).unwrap();
        (m.route.component.clone(), m.params, m.path_info)
    }

    #[test]
    fn exact_beats_param_and_wildcard() {
        assert_eq!(find("/v1/items").0, "list");
        assert_eq!(find("/v1/items/special").0, "special");
        assert_eq!(find("/v1/items/42").1, vec![("id".into(), "42".into())]);
        assert_eq!(find("/v1/items/42/parts").0, "parts");
    }

    #[test]
    fn longest_wildcard_wins() {
        let (c, p, info) = find("/v1/items/42/x/a/b");
        assert_eq!((c.as_str(), info.as_str()), ("deep", "/a/b"));
        assert_eq!(p, vec![("id".into(), "42".into())]);
        assert_eq!(find("/v1/other/thing").0, "v1");
        assert_eq!(find("/v1").0, "v1");
        assert_eq!(find("/elsewhere").0, "fallback");
        assert_eq!(find("/").0, "fallback");
    }

    #[test]
    fn unmatched_without_fallback() {
        let r = Router::new(vec![Route::new("/a", "a")]).unwrap();
        assert!(r.find("/a/b").is_none());
        assert!(r.find("/b").is_none());
        assert!(r.find("/a").is_some());
    }

    #[test]
    fn duplicate_patterns_are_rejected() {
        assert!(Router::new(vec![Route::new("/a/:x", "a"), Route::new("/a/:y", "b")]).is_err());
    }

    #[test]
    fn base_of_wildcards() {
        assert_eq!(Route::new("/v1/...", "x").base(), "/v1");
        assert_eq!(Route::new("/...", "x").base(), "");
        assert_eq!(Route::new("/a/:b", "x").base(), "/a/:b");
    }
}
