//! `#[numa(node = N)]` / `#[numa(interleave = [..])]` on a struct (or enum):
//! parse → validate → expand.

use crate::args::{parse_number_list, with_error, Args, Number};
use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Attribute, Fields, Item};

const KEYS: &[&str] = &["node", "interleave"];
const EXAMPLE: &str = "#[numa(node = 0)] or #[numa(interleave = [0, 1])]";

/// Where values go.
pub enum PlacementSpec {
    Node(Number),
    Interleave(Vec<Number>),
}

impl PlacementSpec {
    /// Parse the arguments of a `#[numa(..)]` attribute.
    pub fn parse(tokens: TokenStream, span: Span) -> syn::Result<PlacementSpec> {
        if tokens.is_empty() {
            return Err(syn::Error::new(
                span,
                format!("#[numa] needs a placement: write {EXAMPLE}"),
            ));
        }
        let args = Args::parse(tokens, "numa", KEYS, "#[numa(node = 0)]")?;
        match (args.get("node"), args.get("interleave")) {
            (Some(_), Some((key, _))) => Err(syn::Error::new_spanned(
                key,
                "`node` and `interleave` exclude each other: place on one node with \
                 `node = N`, or spread pages with `interleave = [A, B]`",
            )),
            (Some((_, n)), None) => Ok(PlacementSpec::Node(Number::parse(n, "node")?)),
            (None, Some((_, list))) => Ok(PlacementSpec::Interleave(parse_number_list(
                list,
                "interleave",
            )?)),
            (None, None) => unreachable!("Args::parse refuses unknown keys and empty lists"),
        }
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
        match self {
            PlacementSpec::Node(n) => match n.literal() {
                Some(v) => format!("node {v}"),
                None => format!("node `{}`", n.to_token_stream()),
            },
            PlacementSpec::Interleave(_) => "interleaved nodes".into(),
        }
    }
}

impl ToTokens for PlacementSpec {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let p = quote!(::numakit::__private);
        tokens.extend(match self {
            PlacementSpec::Node(n) => quote_spanned!(n.span()=>
                #p::NodePlacement::Node(#p::NodeId::new(#n))),
            PlacementSpec::Interleave(nodes) => quote!(
                #p::NodePlacement::Interleave(&[#(#p::NodeId::new(#nodes)),*])),
        });
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
    // Field placements given as const paths, compared at compile time.
    let mut const_checks: Vec<(Number, Number, String)> = Vec::new();
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
                            Ok(Some(check)) => const_checks.push(check),
                            Ok(None) => {}
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
            field.ty = syn::parse_quote_spanned!(ty.span()=> ::numakit::__private::McsLock<#ty>);
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
    let generic_check = quote! {
        #[doc(hidden)]
        const __NUMAKIT_FIELD_NODES: () = { #(#generic_checks)* };
    };
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
    let p = quote!(::numakit::__private);
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
    let place_doc = format!(
        "Build a `{name}` directly in memory on its {}, field by field from \
         `init`, and return it in a [`NodeBox`](::numakit::mem::NodeBox).\n\n\
         # Errors\n`numakit::Error` when the node does not exist, has no memory, \
         or cannot provide the pages now.",
        spec.describe()
    );
    quote! {
        #s

        #(#const_checks)*
        #align_check_now

        #[doc = #placed_doc]
        #init_def

        impl #impl_generics #p::Placed for #name #ty_generics #where_clause {
            const PLACEMENT: #p::NodePlacement = #spec;
        }

        impl #impl_generics #name #ty_generics #where_clause {
            #generic_check
            #align_check

            #[doc = #place_doc]
            #vis fn place(init: #init_name #ty_generics) -> ::core::result::Result<#p::NodeBox<Self>, #p::Error> {
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

fn check_field_placement(
    outer: &PlacementSpec,
    field: &PlacementSpec,
    attr: &Attribute,
    member: &syn::Member,
) -> syn::Result<Option<(Number, Number, String)>> {
    let name = match member {
        syn::Member::Named(id) => format!("`{id}`"),
        syn::Member::Unnamed(i) => format!("{}", i.index),
    };
    match (outer, field) {
        (PlacementSpec::Node(a), PlacementSpec::Node(b)) => match (a.literal(), b.literal()) {
            (Some(a), Some(b)) if a != b => Err(syn::Error::new_spanned(
                attr,
                format!(
                    "field {name} is placed on node {b} but its struct is placed on node {a}: \
                     a by-value field lives where its struct lives; remove this #[numa], or \
                     hold the field in its own NodeBox placed on node {b}"
                ),
            )),
            (Some(_), Some(_)) => Ok(None),
            // A const path on either side: compared when the consts are known.
            _ => Ok(Some((
                a.clone(),
                b.clone(),
                format!(
                    "field {name} is placed on another node than its struct: a by-value field \
                     lives where its struct lives; remove its #[numa], or hold it in its own NodeBox"
                ),
            ))),
        },
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
    let p = quote!(::numakit::__private);
    let (impl_generics, ty_generics, where_clause) = e.generics.split_for_impl();
    let doc = format!(
        "Move `value` into memory on its {} and return it in a NodeBox.\n\n# Errors\n\
         `numakit::Error` when the node cannot hold it.",
        spec.describe()
    );
    quote! {
        #e
        impl #impl_generics #p::Placed for #name #ty_generics #where_clause {
            const PLACEMENT: #p::NodePlacement = #spec;
        }
        impl #impl_generics #name #ty_generics #where_clause {
            #[doc = #doc]
            #vis fn place(value: Self) -> ::core::result::Result<#p::NodeBox<Self>, #p::Error> {
                #p::NodeBox::place(value).map_err(#p::Error::from)
            }
        }
    }
}
