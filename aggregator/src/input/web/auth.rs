//! Bearer tokens of an HTTP input, compared in constant time.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use super::config::InputTokenConfig;

/// The tokens an input accepts; none means requests need no token.
#[derive(Clone, Default)]
pub struct Tokens(Vec<Vec<u8>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    /// Reads every configured token; an error names the entry (`tokens[1]: ...`).
    pub fn read(configs: &[InputTokenConfig]) -> Result<Tokens, String> {
        let mut out = Vec::with_capacity(configs.len());
        for (i, t) in configs.iter().enumerate() {
            let value = t
                .secret()
                .read()
                .map_err(|e| format!("tokens[{i}]: {e}"))?
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("tokens[{i}]: the token is empty"))?;
            out.push(value.into_bytes());
        }
        Ok(Tokens(out))
    }

    /// Tokens given as they are (tests).
    pub fn new(tokens: Vec<Vec<u8>>) -> Tokens {
        Tokens(tokens)
    }

    /// True when no token is asked for.
    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// True if the request's `Authorization: Bearer` token is one of ours (or none is
    /// asked for). Every token is compared, in constant time, without stopping early.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        let mut ok = subtle::Choice::from(0);
        for t in &self.0 {
            ok |= t.as_slice().ct_eq(presented);
        }
        bool::from(ok) && !presented.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_a_configured_bearer_token_passes() {
        let t = Tokens::new(vec![b"alpha".to_vec(), b"beta".to_vec()]);
        assert!(t.allows(&headers(Some("Bearer alpha"))));
        assert!(t.allows(&headers(Some("Bearer beta"))));
        assert!(!t.allows(&headers(Some("Bearer alph"))));
        assert!(!t.allows(&headers(Some("Bearer alphaa"))));
        assert!(!t.allows(&headers(Some("alpha"))));
        assert!(!t.allows(&headers(Some("Bearer "))));
        assert!(!t.allows(&headers(None)));
        assert!(Tokens::default().allows(&headers(None)));
    }
}
