//! `spin.toml` (manifest version 2), read as strictly as Spin reads it: an unknown field is an
//! error, and so is any setting this runtime would otherwise silently ignore. Fields Spin reads but
//! this runtime has no use for (descriptions, `watch`, …) are accepted and kept.
#![allow(
    dead_code,
    reason = "the manifest model mirrors Spin's; not every field drives behaviour here"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The parts of a Spin application manifest this runtime understands.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Must be `2`.
    pub spin_manifest_version: u32,
    /// Application metadata.
    pub application: Application,
    /// Application variables (`[variables]`).
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    /// Triggers by type; only `http` is served.
    #[serde(default)]
    pub trigger: Triggers,
    /// Components by id.
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

/// `[application]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Application name.
    pub name: String,
    /// Application version.
    #[serde(default)]
    pub version: Option<String>,
    /// Authors.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[[trigger.*]]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// HTTP triggers.
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    /// Optional trigger id.
    #[serde(default)]
    pub id: Option<String>,
    /// The route pattern, or `{ private = true }`.
    pub route: RouteDecl,
    /// The id of the component serving the route.
    pub component: String,
}

/// A trigger's `route`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteDecl {
    /// A path pattern.
    Path(String),
    /// Reachable only through service chaining.
    Private {
        /// Must be `true`.
        private: bool,
    },
}

/// One `[variables]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// Value used when nothing else provides one.
    #[serde(default)]
    pub default: Option<String>,
    /// Start-up fails when no value is provided.
    #[serde(default)]
    pub required: bool,
    /// The value is never printed.
    #[serde(default)]
    pub secret: bool,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[component.<id>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    /// Path of the `.wasm` file, relative to the manifest.
    pub source: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Key-value store labels this component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Outbound hosts the component may reach (this runtime grants none; declaring any is allowed).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variables: name → template over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables of the component.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// How `spin build` builds the component.
    #[serde(default)]
    pub build: Option<BuildDecl>,
}

/// `[component.<id>.build]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildDecl {
    /// Shell command line.
    pub command: String,
    /// Directory to run it in, relative to the manifest.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Files `spin watch` watches (not used by this runtime).
    #[serde(default)]
    pub watch: Vec<String>,
}

/// A manifest that has been read and checked, with the directory it came from.
#[derive(Debug)]
pub struct App {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// Directory the manifest's relative paths start from.
    pub base_dir: PathBuf,
}

impl App {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("invalid manifest {}", path.display()))?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let app = Self { manifest, base_dir };
        app.check()?;
        Ok(app)
    }

    fn check(&self) -> anyhow::Result<()> {
        let m = &self.manifest;
        if m.spin_manifest_version != 2 {
            bail!(
                "spin_manifest_version {} is not supported (expected 2)",
                m.spin_manifest_version
            );
        }
        for t in &m.trigger.http {
            if !m.component.contains_key(&t.component) {
                bail!(
                    "trigger route {:?} names unknown component {:?}",
                    t.route,
                    t.component
                );
            }
            match &t.route {
                RouteDecl::Path(p) if !p.starts_with('/') => {
                    bail!("route {p:?} must start with '/'")
                }
                RouteDecl::Private { private: false } => {
                    bail!(
                        "route table for {:?} must say `private = true`",
                        t.component
                    )
                }
                _ => {}
            }
        }
        for (id, c) in &m.component {
            for (name, template) in &c.variables {
                for reference in template_references(template)
                    .with_context(|| format!("component {id:?} variable {name:?}"))?
                {
                    if !m.variables.contains_key(&reference) {
                        bail!(
                            "component {id:?} variable {name:?} refers to undeclared application variable {reference:?}"
                        );
                    }
                }
            }
        }
        for (name, v) in &m.variables {
            if v.required && v.default.is_some() {
                bail!("variable {name:?} cannot be both required and have a default");
            }
        }
        Ok(())
    }

    /// Absolute-or-relative path of a component's Wasm file.
    pub fn source_path(&self, component: &ComponentDecl) -> PathBuf {
        self.base_dir.join(&component.source)
    }
}

/// The application variable names a `{{ name }}` template refers to.
pub fn template_references(template: &str) -> anyhow::Result<Vec<String>> {
    let mut refs = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("unterminated '{{{{' in {template:?}"))?;
        refs.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    Ok(refs)
}

/// Expands `{{ name }}` references with `lookup`.
pub fn render_template(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("unterminated '{{{{' in {template:?}"))?;
        let name = after[..end].trim();
        out.push_str(&lookup(name).with_context(|| format!("no value for variable {name:?}"))?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<App> {
        let manifest: Manifest = toml::from_str(text)?;
        let app = App {
            manifest,
            base_dir: ".".into(),
        };
        app.check()?;
        Ok(app)
    }

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
greeting = { default = "hi" }
[[trigger.http]]
route = "/x/..."
component = "c"
[component.c]
source = "c.wasm"
key_value_stores = ["default"]
variables = { g = "{{ greeting }}!" }
"#;

    #[test]
    fn reads_a_minimal_manifest() {
        let app = parse(MINIMAL).unwrap();
        assert_eq!(app.manifest.component["c"].key_value_stores, ["default"]);
    }

    #[test]
    fn unknown_fields_are_errors() {
        let text = MINIMAL.replace(
            "source = \"c.wasm\"",
            "source = \"c.wasm\"\nfiles = [\"a\"]",
        );
        assert!(parse(&text).is_err());
        let text = MINIMAL.replace("name = \"t\"", "name = \"t\"\nflavour = 1");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn undeclared_variable_reference_is_an_error() {
        let text = MINIMAL.replace("{{ greeting }}", "{{ nope }}");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn route_to_unknown_component_is_an_error() {
        let text = MINIMAL.replace("component = \"c\"", "component = \"d\"");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn templates_render() {
        let s = render_template("a{{ x }}b{{y}}", |n| Some(n.to_uppercase())).unwrap();
        assert_eq!(s, "aXbY");
        assert!(render_template("{{ x", |_| Some(String::new())).is_err());
    }
}
