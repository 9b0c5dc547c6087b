//! `#[numa(node = N)]` / `#[numa(interleave = [..])]` on a struct (or enum):
//! parse → validate → expand.

use crate::args::{parse_number_list, with_error, Args, Number};
use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Attribute, Fields, Item};

const KEYS: &[&str] = &["node", "interleave", "crate"];
const EXAMPLE: &str = "#[numa(node = 0)] or #[numa(interleave = [0, 1])]";

/// Where values go, and the path numakit is reached by.
pub struct PlacementSpec {
    pub kind: PlacementKind,
    /// `crate = path`: where numakit is (for a renamed dependency);
    /// `::numakit` when not given.
    pub krate: Option<syn::Path>,
}

/// Where values go.
pub enum PlacementKind {
    Node(Number),
    Interleave(Vec<Number>),
}

impl PlacementSpec {
    /// `<crate>::__private`, the path generated code reaches the runtime by.
    pub fn private_path(&self) -> TokenStream {
        self.private_path_at(Span::call_site())
    }

    /// As [`private_path`](Self::private_path), spanned at `span` (so that
    /// an error about the generated type points where the user wrote it).
    pub fn private_path_at(&self, span: Span) -> TokenStream {
        match &self.krate {
            Some(path) => quote_spanned!(span=> #path::__private),
            None => quote_spanned!(span=> ::numakit::__private),
        }
    }

    /// Parse the arguments of a `#[numa(..)]` attribute.
    pub fn parse(tokens: TokenStream, span: Span) -> syn::Result<PlacementSpec> {
        if tokens.is_empty() {
            return Err(syn::Error::new(
                span,
                format!("#[numa] needs a placement: write {EXAMPLE}"),
            ));
        }
        let args = Args::parse(tokens, "numa", KEYS, "#[numa(node = 0)]")?;
        let krate = args.crate_path()?;
        let kind = match (args.get("node"), args.get("interleave")) {
            (Some(_), Some((key, _))) => {
                return Err(syn::Error::new_spanned(
                    key,
                    "`node` and `interleave` exclude each other: place on one node with \
                 `node = N`, or spread pages with `interleave = [A, B]`",
                ))
            }
            (Some((_, n)), None) => PlacementKind::Node(Number::parse(n, "node")?),
            (None, Some((_, list))) => {
                PlacementKind::Interleave(parse_number_list(list, "interleave")?)
            }
            (None, None) => {
                return Err(syn::Error::new(
                    span,
                    format!("#[numa] needs a placement: write {EXAMPLE}"),
                ))
            }
        };
        Ok(PlacementSpec { kind, krate })
    }

    /// Parse a `#[numa(..)]` attribute (path form `#[numa]` included).
    pub fn from_attr(attr: &Attribute) -> syn::Result<PlacementSpec> {
        match &attr.meta {
            syn::Meta::Path(p) => PlacementSpec::parse(TokenStream::new(), p.span()),
            syn::Meta::List(l) => PlacementSpec::parse(l.tokens.clone(), l.span()),
            syn::Meta::NameValue(nv) => {
                Err(syn::Error::new_spanned(nv, format!("write {EXAMPLE}")))
            }
        }
    }

    fn describe(&self) -> String {
        match &self.kind {
            PlacementKind::Node(n) => match n.literal() {
                Some(v) => format!("node {v}"),
                None => format!("node `{}`", n.to_token_stream()),
            },
            PlacementKind::Interleave(_) => "interleaved nodes".into(),
        }
    }

    /// The `NodePlacement` expression, reaching numakit through `p`
    /// (`<crate>::__private`).
    pub fn placement_expr(&self, p: &TokenStream) -> TokenStream {
        match &self.kind {
            PlacementKind::Node(n) => quote_spanned!(n.span()=>
                #p::NodePlacement::Node(#p::NodeId::new(#n))),
            PlacementKind::Interleave(nodes) => quote!(
                #p::NodePlacement::Interleave(&[#(#p::NodeId::new(#nodes)),*])),
        }
    }
}

pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let span = attr.span();
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(i) => i,
        Err(e) => return with_error(item, e),
    };
    let spec = match PlacementSpec::parse(attr, span) {
        Ok(s) => s,
        Err(e) => return with_error(strip_field_attrs(parsed), e),
    };
    match parsed {
        Item::Struct(s) => expand_struct(s, spec),
        Item::Enum(e) => expand_enum(e, spec),
        Item::Union(u) => with_error(
            u.to_token_stream(),
            syn::Error::new_spanned(
                u.union_token,
                "#[numa] places structs and enums, not unions: a union's active field is \
                 unknown, so its #[mcs] locks could not be built; wrap the union in a struct",
            ),
        ),
        Item::Fn(f) => with_error(
            f.to_token_stream(),
            syn::Error::new_spanned(
                f.sig.fn_token,
                "#[numa] places data; to run a function on a node write #[pinned(node = N)]",
            ),
        ),
        other => with_error(
            other.to_token_stream(),
            syn::Error::new(span, "#[numa] goes on a struct or an enum"),
        ),
    }
}

/// Remove `#[mcs]` / field `#[numa]` attributes so a failed expansion does
/// not add "unknown attribute" errors to the real one.
fn strip_field_attrs(item: Item) -> TokenStream {
    match item {
        Item::Struct(mut s) => {
            for f in s.fields.iter_mut() {
                f.attrs
                    .retain(|a| !a.path().is_ident("mcs") && !a.path().is_ident("numa"));
            }
            s.to_token_stream()
        }
        other => other.to_token_stream(),
    }
}

struct FieldPlan {
    member: syn::Member,
    /// The type the caller gives (`T` for an `#[mcs] T` field).
    init_ty: syn::Type,
    /// The type stored in the struct (`McsLock<T>` for an `#[mcs]` field).
    stored_ty: syn::Type,
    mcs: bool,
    /// The field's `#[cfg(..)]`s, repeated wherever the field is named.
    cfgs: Vec<Attribute>,
}

/// `place` writes each field in place with an aligned write, and `#[mcs]`
/// fields hold atomics, which must be aligned: a packed struct (any
/// `packed` / `packed(N)` in a `repr`, also one added by `cfg_attr`) is
/// refused.
fn refuse_packed(attrs: &[Attribute]) -> Option<syn::Error> {
    /// Each `packed` in a `repr(..)` in `tokens` (nested groups included:
    /// `cfg_attr(pred, repr(..))`), with the `(N)` after it if any.
    fn find(tokens: TokenStream, in_repr: bool, out: &mut Vec<TokenStream>) {
        let mut iter = tokens.into_iter().peekable();
        while let Some(tt) = iter.next() {
            match tt {
                TokenTree::Ident(id) if in_repr && id == "packed" => {
                    let mut found = TokenStream::from(TokenTree::Ident(id));
                    if let Some(TokenTree::Group(g)) = iter.peek() {
                        if g.delimiter() == Delimiter::Parenthesis {
                            found.extend(iter.next());
                        }
                    }
                    out.push(found);
                }
                TokenTree::Ident(id) if id == "repr" => {
                    if let Some(TokenTree::Group(g)) = iter.peek() {
                        find(g.stream(), true, out);
                        iter.next();
                    }
                }
                // `None` groups wrap tokens passed through `macro_rules!`.
                TokenTree::Group(g) => {
                    let inside = in_repr && g.delimiter() == Delimiter::None;
                    find(g.stream(), inside, out)
                }
                _ => {}
            }
        }
    }
    let mut packed = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("repr") || attr.path().is_ident("cfg_attr") {
            find(attr.meta.to_token_stream(), false, &mut packed);
        }
    }
    packed
        .into_iter()
        .map(|tokens| {
            let written = tokens.to_string().replace(' ', "");
            syn::Error::new_spanned(
                tokens,
                format!(
                    "#[numa] cannot place a `#[repr({written})]` struct: `place` builds each \
                     field in place, which needs every field at an address aligned for its \
                     type (and #[mcs] locks hold atomics, which must be aligned), while a \
                     packed struct puts fields at any address; remove `{written}` \
                     (`#[repr(C)]` alone keeps the declared field order), or keep the packed \
                     bytes in a type of their own and make that a field of the #[numa] struct"
                ),
            )
        })
        .reduce(|mut all, e| {
            all.combine(e);
            all
        })
}

fn expand_struct(mut s: syn::ItemStruct, spec: PlacementSpec) -> TokenStream {
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    if let Some(e) = refuse_packed(&s.attrs) {
        push(e);
    }
    let mut plans = Vec::new();
    let p = spec.private_path();
    // Field placements given as const paths, compared at compile time.
    let mut const_checks: Vec<(Number, Number, String)> = Vec::new();
    // Field interleave sets given as const paths: `same_as` at compile time.
    let mut set_checks: Vec<TokenStream> = Vec::new();
    for (i, field) in s.fields.iter_mut().enumerate() {
        let member = match &field.ident {
            Some(id) => syn::Member::Named(id.clone()),
            None => syn::Member::Unnamed(syn::Index::from(i)),
        };
        let init_ty = field.ty.clone();
        let mut mcs = false;
        let mut kept = Vec::new();
        for attr in field.attrs.drain(..) {
            if attr.path().is_ident("mcs") {
                if !matches!(attr.meta, syn::Meta::Path(_)) {
                    push(syn::Error::new_spanned(
                        &attr,
                        "#[mcs] takes no arguments: write #[mcs] to store the field in an McsLock",
                    ));
                }
                if mcs {
                    push(syn::Error::new_spanned(&attr, "#[mcs] is given twice"));
                }
                mcs = true;
            } else if attr.path().is_ident("numa") {
                match PlacementSpec::from_attr(&attr) {
                    Err(e) => push(e),
                    Ok(field_spec) => {
                        match check_field_placement(&spec, &field_spec, &attr, &member) {
                            Err(e) => push(e),
                            Ok(FieldCheck::Numbers(a, b, msg)) => const_checks.push((a, b, msg)),
                            Ok(FieldCheck::Sets(msg)) => {
                                let field = field_spec.placement_expr(&p);
                                set_checks.push(quote_spanned!(attr.span()=> ::core::assert!(
                                    #p::NodePlacement::same_as(#field, <Self as #p::Placed>::PLACEMENT),
                                    #msg
                                );));
                            }
                            Ok(FieldCheck::None) => {}
                        }
                    }
                }
            } else {
                kept.push(attr);
            }
        }
        field.attrs = kept;
        // A field under #[cfg] exists in the Init twin and is written by
        // `place` under the same #[cfg]. Tuple fields are written by number,
        // and the numbers after a cfg'd field would depend on the cfg.
        let cfgs: Vec<Attribute> = field
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .cloned()
            .collect();
        if let (Some(cfg), syn::Member::Unnamed(_)) = (cfgs.first(), &member) {
            push(syn::Error::new_spanned(
                cfg,
                "#[numa] cannot place a tuple struct with a #[cfg] field: `place` writes \
                 fields by number, and the numbers after this field would depend on the cfg; \
                 name the fields (`struct Pair { a: u8, b: u16 }`)",
            ));
        }
        if mcs {
            let ty = &field.ty;
            field.ty = syn::parse_quote_spanned!(ty.span()=> #p::McsLock<#ty>);
        }
        plans.push(FieldPlan {
            member,
            init_ty,
            stored_ty: field.ty.clone(),
            mcs,
            cfgs,
        });
    }
    if let Some(e) = errors {
        return with_error(s.to_token_stream(), e);
    }

    // A const generic parameter cannot be named in a free `const` item:
    // comparisons that involve one go into an associated const of the
    // type, which `place` evaluates, so they fail to compile when a
    // mismatched instance (`Shard::<1>::place`) is placed.
    let const_params: Vec<String> = s
        .generics
        .const_params()
        .map(|c| c.ident.to_string())
        .collect();
    let is_generic = |n: &Number| match n {
        Number::Path(p) => p
            .get_ident()
            .is_some_and(|id| const_params.contains(&id.to_string())),
        Number::Literal(..) => false,
    };
    let (generic_checks, free_checks): (Vec<_>, Vec<_>) = const_checks
        .iter()
        .partition(|(a, b, _)| is_generic(a) || is_generic(b));
    let const_checks = free_checks.iter().map(
        |(a, b, msg)| quote_spanned!(b.span()=> const _: () = ::core::assert!(#a == #b, #msg);),
    );
    let generic_checks = generic_checks
        .iter()
        .map(|(a, b, msg)| quote_spanned!(b.span()=> ::core::assert!(#a == #b, #msg);));
    // A by-value field whose type is itself #[numa] must be placed where
    // its struct is (asked through `Probe`, see `numakit::Placed`).
    let home_checks = plans.iter().map(|plan| {
        let name = s.ident.to_string();
        field_home_check(&p, &name, &name, &plan.member, &plan.init_ty, &plan.cfgs)
    });
    let generic_check = quote! {
        #[doc(hidden)]
        const __NUMAKIT_FIELD_NODES: () = {
            #[allow(unused_imports)]
            use #p::NotPlaced as _;
            #(#generic_checks)*
            #(#set_checks)*
            #(#home_checks)*
        };
    };
    // Without generic parameters the field checks run whether or not
    // `place` is used.
    let field_check_now = s.generics.params.is_empty().then(|| {
        let name = &s.ident;
        quote!(const _: () = #name::__NUMAKIT_FIELD_NODES;)
    });
    let register = registration(&p, &s.ident, &s.generics);
    // `place` writes fields with aligned writes. A `packed` repr is refused
    // above; this catches one that reaches the struct some other way (an
    // attribute macro after #[numa]), for each instance that is placed.
    let align_checks = plans.iter().map(|plan| {
        let (m, ty) = (&plan.member, &plan.stored_ty);
        let field = match m {
            syn::Member::Named(id) => format!("`{id}`"),
            syn::Member::Unnamed(i) => format!("{}", i.index),
        };
        let msg = format!(
            "#[numa]: field {field} of `{}` is not aligned for its type (is the struct \
             packed?); `place` needs every field aligned: remove `packed` from its repr",
            s.ident
        );
        let cfgs = &plan.cfgs;
        quote_spanned!(ty.span()=> #(#cfgs)* ::core::assert!(
            ::core::mem::offset_of!(Self, #m) % ::core::mem::align_of::<#ty>() == 0
                && ::core::mem::align_of::<#ty>() <= ::core::mem::align_of::<Self>(),
            #msg
        );)
    });
    let align_check = quote! {
        #[doc(hidden)]
        const __NUMAKIT_FIELDS_ALIGNED: () = { #(#align_checks)* };
    };
    // Without generic parameters the check runs whether or not `place` is
    // used.
    let align_check_now = s.generics.params.is_empty().then(|| {
        let name = &s.ident;
        quote!(const _: () = #name::__NUMAKIT_FIELDS_ALIGNED;)
    });
    let name = &s.ident;
    let vis = &s.vis;
    let init_name = format_ident!("{}Init", name);
    let (impl_generics, ty_generics, where_clause) = s.generics.split_for_impl();
    let generics = &s.generics;
    let where_pred = &s.generics.where_clause;

    let init_def = match &s.fields {
        Fields::Named(named) => {
            let fields = named.named.iter().zip(&plans).map(|(f, plan)| {
                let (vis, ident, ty) = (&f.vis, &f.ident, &plan.init_ty);
                let attrs = f.attrs.iter().filter(|a| a.path().is_ident("doc"));
                let cfgs = &plan.cfgs;
                quote!(#(#cfgs)* #(#attrs)* #vis #ident: #ty)
            });
            quote!(#vis struct #init_name #generics #where_pred { #(#fields),* })
        }
        Fields::Unnamed(unnamed) => {
            let fields = unnamed.unnamed.iter().zip(&plans).map(|(f, plan)| {
                let (vis, ty) = (&f.vis, &plan.init_ty);
                quote!(#vis #ty)
            });
            quote!(#vis struct #init_name #generics (#(#fields),*) #where_pred;)
        }
        Fields::Unit => quote!(#vis struct #init_name;),
    };
    let writes = plans.iter().map(|plan| {
        let m = &plan.member;
        let value = if plan.mcs {
            quote!(#p::McsLock::new(init.#m))
        } else {
            quote!(init.#m)
        };
        let cfgs = &plan.cfgs;
        quote!(#(#cfgs)* #p::ptr::addr_of_mut!((*slot).#m).write(#value);)
    });
    let placed_doc = format!(
        "Plain field values for [`{name}::place`]: the same fields, with `#[mcs]` \
         fields as their inner type (they are wrapped in `McsLock` when placed)."
    );
    let placement = spec.placement_expr(&p);
    let place_doc = format!(
        "Build a `{name}` directly in memory on its {}, field by field from \
         `init`, and return it in a `NodeBox`.\n\n\
         # Errors\n`numakit::Error` when the node does not exist, has no memory, \
         or cannot provide the pages now.",
        spec.describe()
    );
    quote! {
        #s

        #(#const_checks)*
        #align_check_now
        #field_check_now
        #register

        #[doc = #placed_doc]
        #init_def

        impl #impl_generics #p::Placed for #name #ty_generics #where_clause {
            const PLACEMENT: #p::NodePlacement = #placement;
        }

        impl #impl_generics #name #ty_generics #where_clause {
            #generic_check
            #align_check

            #[doc = #place_doc]
            #vis fn place(init: #init_name #ty_generics) -> ::core::result::Result<#p::NodeBox<Self>, #p::Error> {
                // NodeBox refuses this type elsewhere from now on (generic
                // instances are recorded here; see `numakit::Placed`).
                #p::register_placed::<Self>();
                // Field nodes that depend on const parameters, checked for
                // this instance at compile time.
                #[allow(clippy::let_unit_value)]
                let () = Self::__NUMAKIT_FIELD_NODES;
                // Every field at an aligned offset, checked at compile time.
                #[allow(clippy::let_unit_value)]
                let () = Self::__NUMAKIT_FIELDS_ALIGNED;
                // SAFETY: `slot` is valid and aligned for `Self` (NodeBox's
                // contract) and every field sits at an offset aligned for its
                // type (checked above), so each aligned write is in bounds and
                // aligned; the closure writes every field exactly once, so the
                // value is fully initialised when it returns. Nothing between
                // the writes can panic (moves out of `init`, `McsLock::new`).
                let placed = unsafe {
                    #p::NodeBox::new_in_place(<Self as #p::Placed>::PLACEMENT, |slot: *mut Self| {
                        #(#writes)*
                    })
                };
                placed.map_err(#p::Error::from)
            }
        }
    }
}

/// What is left to check at compile time after the macro's own look at a
/// field's `#[numa]`.
enum FieldCheck {
    None,
    /// Two node numbers (one a const path) that must be equal.
    Numbers(Number, Number, String),
    /// Two interleave sets (some const paths) that must be the same set.
    Sets(String),
}

fn check_field_placement(
    outer: &PlacementSpec,
    field: &PlacementSpec,
    attr: &Attribute,
    member: &syn::Member,
) -> syn::Result<FieldCheck> {
    let name = match member {
        syn::Member::Named(id) => format!("`{id}`"),
        syn::Member::Unnamed(i) => format!("{}", i.index),
    };
    match (&outer.kind, &field.kind) {
        (PlacementKind::Node(a), PlacementKind::Node(b)) => match (a.literal(), b.literal()) {
            (Some(a), Some(b)) if a != b => Err(syn::Error::new_spanned(
                attr,
                format!(
                    "field {name} is placed on node {b} but its struct is placed on node {a}: \
                     a by-value field lives where its struct lives; remove this #[numa], or \
                     hold the field in its own NodeBox placed on node {b}"
                ),
            )),
            (Some(_), Some(_)) => Ok(FieldCheck::None),
            // A const path on either side: compared when the consts are known.
            _ => Ok(FieldCheck::Numbers(
                a.clone(),
                b.clone(),
                format!(
                    "field {name} is placed on another node than its struct: a by-value field \
                     lives where its struct lives; remove its #[numa], or hold it in its own NodeBox"
                ),
            )),
        },
        (PlacementKind::Interleave(a), PlacementKind::Interleave(b)) => {
            let literal = |list: &[Number]| -> Option<Vec<u32>> {
                let mut v: Vec<u32> = list.iter().map(Number::literal).collect::<Option<_>>()?;
                v.sort_unstable();
                Some(v)
            };
            match (literal(a), literal(b)) {
                (Some(x), Some(y)) if x == y => Ok(FieldCheck::None),
                (Some(_), Some(_)) => Err(syn::Error::new_spanned(
                    attr,
                    format!(
                        "field {name} is interleaved over other nodes than its struct: a \
                         by-value field lives where its struct lives; give it the same \
                         interleave set, remove this #[numa], or hold the field in its own NodeBox"
                    ),
                )),
                _ => Ok(FieldCheck::Sets(format!(
                    "field {name} is interleaved over other nodes than its struct: a by-value \
                     field lives where its struct lives; give it the same interleave set, remove \
                     its #[numa], or hold it in its own NodeBox"
                ))),
            }
        }
        _ => Err(syn::Error::new_spanned(
            attr,
            format!(
                "field {name} has a placement of its own that differs from its struct's: a \
                 by-value field lives where its struct lives; remove this #[numa], or hold the \
                 field in its own NodeBox"
            ),
        )),
    }
}

fn expand_enum(e: syn::ItemEnum, spec: PlacementSpec) -> TokenStream {
    let name = &e.ident;
    let vis = &e.vis;
    let p = spec.private_path();
    let placement = spec.placement_expr(&p);
    let (impl_generics, ty_generics, where_clause) = e.generics.split_for_impl();
    let doc = format!(
        "Move `value` (an ordinary value, built with a variant) into memory on its {} and \
         return it in a `NodeBox`.\n\n# Errors\n`numakit::Error` when the node cannot hold it.",
        spec.describe()
    );
    // Every variant's by-value fields live where the enum lives.
    let home_checks = e.variants.iter().flat_map(|v| {
        let p = &p;
        v.fields.iter().enumerate().map(move |(i, f)| {
            let member = match &f.ident {
                Some(id) => syn::Member::Named(id.clone()),
                None => syn::Member::Unnamed(syn::Index::from(i)),
            };
            let cfgs: Vec<Attribute> = f
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("cfg"))
                .cloned()
                .collect();
            let owner = format!("{name}::{}", v.ident);
            field_home_check(p, &owner, &name.to_string(), &member, &f.ty, &cfgs)
        })
    });
    let check_now = e
        .generics
        .params
        .is_empty()
        .then(|| quote!(const _: () = #name::__NUMAKIT_FIELD_NODES;));
    let register = registration(&p, name, &e.generics);
    quote! {
        #e
        #check_now
        #register
        impl #impl_generics #p::Placed for #name #ty_generics #where_clause {
            const PLACEMENT: #p::NodePlacement = #placement;
        }
        impl #impl_generics #name #ty_generics #where_clause {
            #[doc(hidden)]
            const __NUMAKIT_FIELD_NODES: () = {
                #[allow(unused_imports)]
                use #p::NotPlaced as _;
                #(#home_checks)*
            };

            #[doc = #doc]
            #vis fn place(value: Self) -> ::core::result::Result<#p::NodeBox<Self>, #p::Error> {
                #[allow(clippy::let_unit_value)]
                let () = Self::__NUMAKIT_FIELD_NODES;
                #p::NodeBox::place(value).map_err(#p::Error::from)
            }
        }
    }
}

/// A type's spelling for messages: `NodeBox<B>`, not `NodeBox < B >`.
fn type_text(ty: &syn::Type) -> String {
    let text = ty.to_token_stream().to_string();
    let chars: Vec<char> = text.chars().collect();
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '\'');
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = out.chars().last();
            let keep =
                (word(prev.as_ref()) && word(chars.get(i + 1))) || matches!(prev, Some(',' | ';'));
            if !keep {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The compile-time check that a by-value field's type, if it is itself
/// `#[numa]`, is placed where the struct `owner` is.
fn field_home_check(
    p: &TokenStream,
    owner: &str,
    placed: &str,
    member: &syn::Member,
    ty: &syn::Type,
    cfgs: &[Attribute],
) -> TokenStream {
    let field = match member {
        syn::Member::Named(id) => format!("`{id}`"),
        syn::Member::Unnamed(i) => format!("{}", i.index),
    };
    let ty_text = type_text(ty);
    let msg = format!(
        "#[numa]: field {field} of `{owner}` has type `{ty_text}`, which is declared \
         (#[numa]) for another placement than `{placed}`; a by-value field lives where the \
         value holding it lives, so one of the two declarations would be false: make the \
         field a `NodeBox<{ty_text}>` (placed where `{ty_text}` says), or declare both types \
         for the same node"
    );
    quote_spanned!(ty.span()=> #(#cfgs)* ::core::assert!(
        #p::field_home_agrees(#p::Probe::<#ty>::HOME, <Self as #p::Placed>::PLACEMENT),
        #msg
    );)
}

/// For a type without generic parameters, an `.init_array` entry that
/// records its declared placement before `main` (see `numakit::Placed`);
/// generic types are recorded by `place`.
fn registration(
    p: &TokenStream,
    name: &syn::Ident,
    generics: &syn::Generics,
) -> Option<TokenStream> {
    if !generics.params.is_empty() {
        return None;
    }
    Some(quote! {
        const _: () = {
            extern "C" fn __numakit_register() {
                #p::register_placed::<#name>();
            }
            // Run by the loader before `main`, like a C constructor.
            #[used]
            #[unsafe(link_section = ".init_array")]
            static __NUMAKIT_REGISTER: extern "C" fn() = __numakit_register;
        };
    })
}
