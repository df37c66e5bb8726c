// A few routes need no router library: the path is state, links push history entries.

import { useEffect, useState } from 'react';

export type Route =
  | { name: 'login' }
  | { name: 'register' }
  | { name: 'rooms' }
  | { name: 'room'; roomId: string }
  | { name: 'home' };

export function parseRoute(path: string): Route {
  if (path === '/login') return { name: 'login' };
  if (path === '/register') return { name: 'register' };
  if (path === '/rooms' || path === '/rooms/') return { name: 'rooms' };
  const room = /^\/rooms\/([^/]+)\/?$/.exec(path);
  if (room) return { name: 'room', roomId: decodeURIComponent(room[1]) };
  return { name: 'home' };
}

const listeners = new Set<() => void>();

export function navigate(path: string, replace = false): void {
  if (replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
  listeners.forEach((listener) => listener());
}

export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const update = () => setPath(window.location.pathname);
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return path;
}

/** An in-app link: a real <a href> (open in new tab works) that navigates without a reload. */
export function linkHandler(path: string) {
  return (event: React.MouseEvent) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    navigate(path);
  };
}
