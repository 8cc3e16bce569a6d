//! The values a WAMP message carries, independent of the serializer: what JSON, MessagePack
//! and CBOR decode into and encode from, so a publication made in one can reach a subscriber
//! of another.
//!
//! Dictionaries keep the order their keys arrived in (a publisher's kwargs reach subscribers
//! as sent). Binary strings are `Bytes`; JSON carries them as a string that starts with a NUL
//! followed by base64 (WAMP v2, "Binary conversion of JSON Strings").

/// A WAMP value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Any integer that fits an `i64`.
    Integer(i64),
    /// An integer above `i64::MAX` (MessagePack and CBOR carry them; so may JSON).
    Unsigned(u64),
    Float(f64),
    String(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(Dict),
}

/// A dictionary with its keys in arrival order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dict(pub Vec<(String, Value)>);

impl Dict {
    pub fn new() -> Dict {
        Dict(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The first value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing a value already there.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// `key` as a bool: `None` when absent, `Some(Err(()))` when of another type.
    pub fn bool(&self, key: &str) -> Option<Result<bool, ()>> {
        self.get(key).map(|value| match value {
            Value::Bool(b) => Ok(*b),
            _ => Err(()),
        })
    }

    /// `key` as a string: `None` when absent, `Some(Err(()))` when of another type.
    pub fn str(&self, key: &str) -> Option<Result<&str, ()>> {
        self.get(key).map(|value| match value {
            Value::String(s) => Ok(s.as_str()),
            _ => Err(()),
        })
    }

    /// `key` as a non-negative integer: `None` when absent, `Some(Err(()))` otherwise.
    pub fn uint(&self, key: &str) -> Option<Result<u64, ()>> {
        self.get(key).map(Value::as_u64)
    }
}

impl Value {
    /// A non-negative integer, as `u64`.
    #[allow(clippy::result_unit_err)]
    pub fn as_u64(&self) -> Result<u64, ()> {
        match *self {
            Value::Integer(i) => u64::try_from(i).map_err(|_| ()),
            Value::Unsigned(u) => Ok(u),
            _ => Err(()),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// How deeply lists and dicts nest in this value: 0 for a scalar, 1 for a flat list.
    pub fn depth(&self) -> usize {
        match self {
            Value::List(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Dict(dict) => 1 + dict.0.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            Value::Null
            | Value::Bool(_)
            | Value::Integer(_)
            | Value::Unsigned(_)
            | Value::Float(_)
            | Value::String(_)
            | Value::Bytes(_) => 0,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<u64> for Value {
    fn from(u: u64) -> Value {
        match i64::try_from(u) {
            Ok(i) => Value::Integer(i),
            Err(_) => Value::Unsigned(u),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Value {
        Value::Dict(d)
    }
}
