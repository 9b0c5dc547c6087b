//! `#[pinned(node = N)]` / `#[pinned(cpu = C)]` on a function or method:
//! parse → validate → expand.

use crate::args::{with_error, Args, Number};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

const KEYS: &[&str] = &["node", "cpu", "on_error", "crate"];

enum Target {
    Node(Number),
    Cpu(Number),
}

struct Spec {
    target: Target,
    panic_on_error: bool,
    /// `crate = path`: where numakit is, for a renamed dependency.
    krate: Option<syn::Path>,
}

fn parse_spec(attr: TokenStream, span: proc_macro2::Span) -> syn::Result<Spec> {
    if attr.is_empty() {
        return Err(syn::Error::new(
            span,
            "#[pinned] needs a place to run: write #[pinned(node = N)] or #[pinned(cpu = C)]",
        ));
    }
    let args = Args::parse(attr, "pinned", KEYS, "#[pinned(node = 0)]")?;
    let target = match (args.get("node"), args.get("cpu")) {
        (Some(_), Some((key, _))) => {
            return Err(syn::Error::new_spanned(
                key,
                "`node` and `cpu` exclude each other: pin to a node's CPUs with `node = N`, \
                 or to one CPU with `cpu = C`",
            ))
        }
        (Some((_, n)), None) => Target::Node(Number::parse(n, "node")?),
        (None, Some((_, c))) => Target::Cpu(Number::parse(c, "cpu")?),
        (None, None) => {
            let (key, _) = &args.pairs[0];
            return Err(syn::Error::new_spanned(
                key,
                "#[pinned] needs `node = N` or `cpu = C` to say where the function runs",
            ));
        }
    };
    let panic_on_error = match args.get("on_error") {
        None => false,
        Some((_, syn::Expr::Path(p))) if p.path.is_ident("panic") => true,
        Some((_, other)) => {
            return Err(syn::Error::new_spanned(
                other,
                "the only value of `on_error` is `panic`; to handle the error instead, return \
                 `Result<_, E>` with `E: From<numakit::Error>`",
            ))
        }
    };
    let krate = args.crate_path()?;
    Ok(Spec {
        krate,
        target,
        panic_on_error,
    })
}

/// Whether the return type is spelled `Result<..>` (any path ending in it).
fn returns_result(ret: &ReturnType) -> bool {
    match ret {
        ReturnType::Type(_, ty) => match &**ty {
            syn::Type::Path(tp) => tp.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let span = attr.span();
    let f = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            return with_error(
                item,
                syn::Error::new(span, "#[pinned] goes on a function or a method with a body"),
            )
        }
    };
    let spec = match parse_spec(attr, span) {
        Ok(s) => s,
        Err(e) => return with_error(f.to_token_stream(), e),
    };
    if let Some(a) = &f.sig.asyncness {
        return with_error(
            f.to_token_stream(),
            syn::Error::new_spanned(
                a,
                "#[pinned] cannot go on an `async fn`: a future is polled by whichever thread \
                 the executor picks, so pinning the polling thread places nothing; pin the \
                 executor's worker threads instead (numakit::sched::spawn_group)",
            ),
        );
    }
    if let Some(c) = &f.sig.constness {
        return with_error(
            f.to_token_stream(),
            syn::Error::new_spanned(
                c,
                "#[pinned] cannot go on a `const fn`: pinning is a run-time system call; \
                 remove `const` or the attribute",
            ),
        );
    }
    let is_result = returns_result(&f.sig.output);
    if !is_result && !spec.panic_on_error {
        let at = match &f.sig.output {
            ReturnType::Type(_, ty) => ty.to_token_stream(),
            ReturnType::Default => f.sig.ident.to_token_stream(),
        };
        return with_error(
            f.to_token_stream(),
            syn::Error::new_spanned(
                at,
                "pinning can fail (absent node, CPU not allowed), and this function does not \
                 return a Result: return `Result<_, E>` with `E: From<numakit::Error>`, or \
                 write `on_error = panic` to panic instead, e.g. #[pinned(node = 0, on_error = panic)]",
            ),
        );
    }

    let p = match &spec.krate {
        Some(path) => quote!(#path::__private),
        None => quote!(::numakit::__private),
    };
    let (pin_call, what) = match &spec.target {
        Target::Node(n) => (
            quote_spanned!(n.span()=> #p::pin_to_node(#p::NodeId::new(#n))),
            format!("node {}", n.to_token_stream()),
        ),
        Target::Cpu(c) => (
            quote_spanned!(c.span()=> #p::pin_to_cpu(#p::CpuId::new(#c))),
            format!("CPU {}", c.to_token_stream()),
        ),
    };
    let fn_name = f.sig.ident.to_string();
    let on_error = if spec.panic_on_error {
        let msg = format!("#[pinned] could not pin `{fn_name}` to {what}: {{}}");
        quote!(::core::panic!(#msg, __numakit_error))
    } else {
        let ret_span = match &f.sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => f.sig.ident.span(),
        };
        quote_spanned!(ret_span=>
            return ::core::result::Result::Err(::core::convert::From::from(
                #p::Error::from(__numakit_error))))
    };
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = f;
    quote! {
        #(#attrs)*
        #vis #sig {
            // Restores the thread's CPU mask and memory policy when the body
            // ends, returns early or unwinds. (The conversion is the identity
            // when the function's error type is numakit::Error itself.)
            #[allow(clippy::useless_conversion)]
            let __numakit_pin_guard = match #pin_call {
                ::core::result::Result::Ok(guard) => guard,
                ::core::result::Result::Err(__numakit_error) => { #on_error }
            };
            #block
        }
    }
}
