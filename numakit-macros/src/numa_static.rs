//! `numa_static! { #[numa(node = N)] static NAME: T = init; ... }`:
//! parse → validate → expand.

use crate::args::with_error;
use crate::numa::PlacementSpec;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Token, Type, Visibility};

struct StaticItem {
    attrs: Vec<Attribute>,
    vis: Visibility,
    static_token: Token![static],
    mutability: Option<Token![mut]>,
    ident: Ident,
    ty: Type,
    expr: Expr,
}

impl Parse for StaticItem {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let static_token = input.parse()?;
        let mutability = input.parse()?;
        let ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty = input.parse()?;
        input.parse::<Token![=]>()?;
        let expr = input.parse()?;
        input.parse::<Token![;]>()?;
        Ok(StaticItem {
            attrs,
            vis,
            static_token,
            mutability,
            ident,
            ty,
            expr,
        })
    }
}

struct Items(Vec<StaticItem>);

impl Parse for Items {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut items = Vec::new();
        while !input.is_empty() {
            items.push(input.parse()?);
        }
        Ok(Items(items))
    }
}

pub fn expand(input: TokenStream) -> TokenStream {
    let items = match syn::parse2::<Items>(input) {
        Ok(i) => i.0,
        Err(e) => {
            let msg = format!(
                "{e}; numa_static! takes items like `#[numa(node = 0)] static NAME: Type = init;`"
            );
            return syn::Error::new(e.span(), msg).to_compile_error();
        }
    };
    let mut out = TokenStream::new();
    for item in items {
        out.extend(expand_item(item));
    }
    out
}

fn expand_item(item: StaticItem) -> TokenStream {
    let StaticItem {
        attrs,
        vis,
        static_token,
        mutability,
        ident,
        ty,
        expr,
    } = item;
    let p = quote!(::numakit::__private);
    // What is emitted when the item is refused: a plain static of the
    // wrapper type, so uses of NAME elsewhere still type-check.
    let fallback = quote!(#vis static #ident: #p::NumaStatic<#ty> =
        #p::NumaStatic::new(#p::NodePlacement::Node(#p::NodeId::new(0)), || -> #ty { #expr }););
    if let Some(m) = mutability {
        return with_error(
            fallback,
            syn::Error::new_spanned(
                m,
                "numa_static! statics cannot be `static mut`: they are shared and initialised \
                 once; remove `mut` and use interior mutability (atomics, an McsLock) for state",
            ),
        );
    }
    let (numa_attrs, other_attrs): (Vec<&Attribute>, Vec<&Attribute>) =
        attrs.iter().partition(|a| a.path().is_ident("numa"));
    let spec = match numa_attrs.as_slice() {
        [] => {
            return with_error(
                fallback,
                syn::Error::new_spanned(
                    static_token,
                    format!(
                        "static `{ident}` in numa_static! has no placement: write \
                         #[numa(node = N)] (or #[numa(interleave = [A, B])]) above it"
                    ),
                ),
            )
        }
        [one] => match PlacementSpec::from_attr(one) {
            Ok(s) => s,
            Err(e) => return with_error(fallback, e),
        },
        [_, second, ..] => {
            return with_error(
                fallback,
                syn::Error::new_spanned(second, "give one #[numa(..)] per static"),
            )
        }
    };
    let name = ident.to_string();
    let p = spec.private_path();
    let placement = spec.placement_expr(&p);
    // Spanned at the type, so "`T` cannot be shared between threads" points
    // at it.
    let at_ty = spec.private_path_at(ty.span());
    let static_ty = quote_spanned!(ty.span()=> #at_ty::NumaStatic<#ty>);
    quote! {
        #(#other_attrs)*
        #vis static #ident: #static_ty = #p::NumaStatic::named(
            ::core::concat!(::core::module_path!(), "::", #name),
            #placement,
            || -> #ty { #expr },
        );
    }
}
