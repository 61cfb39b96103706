// A tiny history router: the broker answers every non-API path with
// index.html, so deep links and reloads work.
export function navigate(to: string) {
  history.pushState(null, "", to);
  dispatchEvent(new PopStateEvent("popstate"));
}

export function Link({ href, children, ...rest }: any) {
  return <a href={href} {...rest} onClick={(e: MouseEvent) => {
    if (e.ctrlKey || e.metaKey || e.button !== 0) return;
    e.preventDefault();
    navigate(href);
  }}>{children}</a>;
}

