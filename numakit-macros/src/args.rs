//! Parsing and validating `key = value` argument lists.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, MetaNameValue, Token};

/// `key = value` pairs, in order, with duplicates refused.
pub struct Args {
    pub pairs: Vec<(syn::Ident, Expr)>,
}

impl Args {
    /// Parse `a = 1, b = [2, 3]`, refusing unknown and duplicate keys.
    pub fn parse(
        tokens: TokenStream,
        macro_name: &str,
        valid: &[&str],
        example: &str,
    ) -> syn::Result<Args> {
        let parsed = Punctuated::<MetaNameValue, Token![,]>::parse_terminated
            .parse2(tokens.clone())
            .map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("#[{macro_name}] takes `key = value` arguments, e.g. `{example}`"),
                )
            })?;
        let mut pairs: Vec<(syn::Ident, Expr)> = Vec::new();
        for nv in parsed {
            let Some(key) = nv.path.get_ident().cloned() else {
                return Err(syn::Error::new_spanned(
                    &nv.path,
                    format!("expected one of: {}", valid.join(", ")),
                ));
            };
            if !valid.iter().any(|v| key == v) {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!(
                        "unknown key `{key}` for #[{macro_name}]; valid keys: {}",
                        valid.join(", ")
                    ),
                ));
            }
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!("`{key}` is given twice; give it once"),
                ));
            }
            pairs.push((key, nv.value));
        }
        Ok(Args { pairs })
    }

    pub fn get(&self, key: &str) -> Option<&(syn::Ident, Expr)> {
        self.pairs.iter().find(|(k, _)| k == key)
    }

    /// The `crate = path` argument: the path numakit is reached by, for a
    /// program that depends on it under another name.
    pub fn crate_path(&self) -> syn::Result<Option<syn::Path>> {
        match self.get("crate") {
            None => Ok(None),
            Some((_, Expr::Path(p))) if p.qself.is_none() => Ok(Some(p.path.clone())),
            Some((_, other)) => Err(syn::Error::new_spanned(
                other,
                "`crate` takes the path numakit is reached by, e.g. `crate = nk` when \
                 Cargo.toml says `nk = { package = \"numakit\", .. }`",
            )),
        }
    }
}

/// A node or CPU number: a non-negative integer literal or a path to a
/// `u32` const.
#[derive(Clone)]
pub enum Number {
    Literal(u32, Span),
    Path(syn::Path),
}

impl Number {
    pub fn parse(expr: &Expr, what: &str) -> syn::Result<Number> {
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => int
                .base10_parse::<u32>()
                .map(|n| Number::Literal(n, int.span()))
                .map_err(|_| {
                    let why = if int.base10_digits().starts_with('-') {
                        "cannot be negative"
                    } else {
                        "must fit in a u32"
                    };
                    syn::Error::new_spanned(int, format!("{what} {why}, e.g. `{what} = 1`"))
                }),
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => Err(syn::Error::new_spanned(
                u,
                format!("{what} cannot be negative, e.g. `{what} = 1`"),
            )),
            Expr::Path(p) if p.qself.is_none() => Ok(Number::Path(p.path.clone())),
            Expr::Group(g) => Number::parse(&g.expr, what),
            other => Err(syn::Error::new_spanned(
                other,
                format!(
                    "{what} must be a non-negative integer literal or a path to a `u32` const, \
                     e.g. `{what} = 1` or `{what} = MY_NODE`"
                ),
            )),
        }
    }

    pub fn literal(&self) -> Option<u32> {
        match self {
            Number::Literal(n, _) => Some(*n),
            Number::Path(_) => None,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Number::Literal(_, s) => *s,
            Number::Path(p) => p.span(),
        }
    }
}

impl ToTokens for Number {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Number::Literal(n, span) => {
                let lit = syn::LitInt::new(&format!("{n}u32"), *span);
                tokens.extend(quote!(#lit));
            }
            Number::Path(p) => tokens.extend(quote_spanned!(p.span()=> #p)),
        }
    }
}

/// A list of node numbers: `[0, 1, MY_NODE]`.
pub fn parse_number_list(expr: &Expr, what: &str) -> syn::Result<Vec<Number>> {
    let Expr::Array(arr) = expr else {
        return Err(syn::Error::new_spanned(
            expr,
            format!("{what} takes a list of nodes, e.g. `{what} = [0, 1]`"),
        ));
    };
    if arr.elems.is_empty() {
        return Err(syn::Error::new_spanned(
            arr,
            format!("{what} needs at least one node, e.g. `{what} = [0, 1]`"),
        ));
    }
    let nodes = arr
        .elems
        .iter()
        .map(|e| Number::parse(e, "node"))
        .collect::<syn::Result<Vec<_>>>()?;
    for (i, a) in nodes.iter().enumerate() {
        if let Some(n) = a.literal() {
            if nodes[..i].iter().any(|b| b.literal() == Some(n)) {
                return Err(syn::Error::new(
                    a.span(),
                    format!("node {n} is listed twice in {what}"),
                ));
            }
        }
    }
    Ok(nodes)
}

/// The item unchanged, followed by the error: follow-on errors stay sane.
pub fn with_error(item: TokenStream, err: syn::Error) -> TokenStream {
    let err = err.to_compile_error();
    quote!(#item #err)
}
