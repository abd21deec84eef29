//! Macros that keep every message type's common header in one place, and the wire enums.

/// An enum of wire strings, with `ALL`, `as_str` and `Display`.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

macro_rules! wire_tags {
    ($($(#[$doc:meta])* $name:ident = $wire:literal),+ $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl $name {
            /// The wire name.
            pub const WIRE: &'static str = $wire;
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($wire)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                if s == $wire {
                    Ok(Self)
                } else {
                    Err(serde::de::Error::custom(format_args!("expected {:?}", $wire)))
                }
            }
        }
    )+};
}

/// Defines one message struct: the common header (`type`, `message_id`, `timestamp`), the listed
/// required fields, the listed optional fields (omitted when `None`, `null` refused) and the `ext`
/// extension point, and registers it under its schema id.
macro_rules! message {
    (
        $(#[$doc:meta])*
        $name:ident, tag $tag:ident, schema $id:literal $(, check $check:path)? {
            $($(#[$rdoc:meta])* $req:ident : $rty:ty,)*
        } optional {
            $($(#[$odoc:meta])* $opt:ident : $oty:ty,)*
        }
    ) => {
        message! {
            $(#[$doc])*
            $name, tag calling::$tag, schema $id $(, check $check)? {
                $($(#[$rdoc])* $req : $rty,)*
            } optional {
                $($(#[$odoc])* $opt : $oty,)*
            }
        }
    };
    (
        $(#[$doc:meta])*
        $name:ident, tag $module:ident :: $tag:ident, schema $id:literal $(, check $check:path)? {
            $($(#[$rdoc:meta])* $req:ident : $rty:ty,)*
        } optional {
            $($(#[$odoc:meta])* $opt:ident : $oty:ty,)*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The `type` field.
            #[serde(rename = "type")]
            pub kind: $crate::$module::tags::$tag,
            /// Unique per message; receivers drop one they have seen.
            pub message_id: $crate::MessageId,
            /// When the sender created the message.
            pub timestamp: $crate::Timestamp,
            $($(#[$rdoc])* pub $req: $rty,)*
            $(
                $(#[$odoc])*
                #[serde(default, deserialize_with = "crate::fields::present", skip_serializing_if = "Option::is_none")]
                pub $opt: Option<$oty>,
            )*
            /// Extension point for additive v1 fields.
            #[serde(default, deserialize_with = "crate::fields::present", skip_serializing_if = "Option::is_none")]
            pub ext: Option<$crate::fields::Extensions>,
        }

        impl $crate::registry::Schema for $name {
            const ID: &'static str = $id;
            $(
            fn check(&self) -> Result<(), $crate::ParseError> {
                $check(self)
            }
            )?
        }
    };
}
