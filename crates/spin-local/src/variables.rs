//! Application variables: `[variables]` declarations resolved from `--variable`, `SPIN_VARIABLE_<NAME>`
//! and defaults, then rendered into each component's `variables` templates.

use std::collections::BTreeMap;

use anyhow::bail;

use crate::manifest::{VariableDecl, render_template};

/// Resolved application variables.
#[derive(Debug, Default)]
pub struct Variables {
    values: BTreeMap<String, String>,
}

impl Variables {
    /// Resolves every declared variable. `overrides` come from `--variable name=value` and win;
    /// `env` is consulted for `SPIN_VARIABLE_<NAME>` (upper-cased); a required variable without a value
    /// is a start-up error, as in Spin.
    pub fn resolve(
        decls: &BTreeMap<String, VariableDecl>,
        overrides: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        for name in overrides.keys() {
            if !decls.contains_key(name) {
                bail!("--variable {name:?} is not declared in [variables]");
            }
        }
        let mut values = BTreeMap::new();
        for (name, decl) in decls {
            let from_env = env(&format!("SPIN_VARIABLE_{}", name.to_uppercase()));
            let value = overrides
                .get(name)
                .cloned()
                .or(from_env)
                .or_else(|| decl.default.clone());
            match value {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None if decl.required => bail!(
                    "required variable {name:?} has no value (set SPIN_VARIABLE_{} or pass --variable {name}=...)",
                    name.to_uppercase()
                ),
                None => {}
            }
        }
        Ok(Self { values })
    }

    /// A component's variables: each of its templates rendered over the application variables.
    pub fn for_component(
        &self,
        component: &str,
        templates: &BTreeMap<String, String>,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        templates
            .iter()
            .map(|(name, t)| {
                render_template(t, |n| self.values.get(n).cloned())
                    .map(|v| (name.clone(), v))
                    .map_err(|e| anyhow::anyhow!("component {component:?} variable {name:?}: {e}"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(default: Option<&str>, required: bool) -> VariableDecl {
        VariableDecl {
            default: default.map(str::to_string),
            required,
            secret: false,
            description: None,
        }
    }

    #[test]
    fn precedence_is_flag_then_env_then_default() {
        let decls = BTreeMap::from([("a".to_string(), decl(Some("d"), false))]);
        let env = |k: &str| (k == "SPIN_VARIABLE_A").then(|| "e".to_string());
        let none = BTreeMap::new();
        assert_eq!(
            Variables::resolve(&decls, &none, |_| None).unwrap().values["a"],
            "d"
        );
        assert_eq!(
            Variables::resolve(&decls, &none, env).unwrap().values["a"],
            "e"
        );
        let flag = BTreeMap::from([("a".to_string(), "f".to_string())]);
        assert_eq!(
            Variables::resolve(&decls, &flag, env).unwrap().values["a"],
            "f"
        );
    }

    #[test]
    fn missing_required_variable_fails() {
        let decls = BTreeMap::from([("s".to_string(), decl(None, true))]);
        assert!(Variables::resolve(&decls, &BTreeMap::new(), |_| None).is_err());
    }

    #[test]
    fn component_templates_render() {
        let decls = BTreeMap::from([("a".to_string(), decl(Some("1"), false))]);
        let vars = Variables::resolve(&decls, &BTreeMap::new(), |_| None).unwrap();
        let t = BTreeMap::from([("x".to_string(), "v{{ a }}".to_string())]);
        assert_eq!(vars.for_component("c", &t).unwrap()["x"], "v1");
    }
}
