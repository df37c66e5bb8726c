// The signed-in user and token, kept in localStorage so a reload stays signed in.

import { useCallback, useEffect, useState } from 'react';

import { api, ApiError, type Session } from './api';

const KEY = 'switchyard.session';

function load(): Session | null {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) ?? 'null');
    return stored && typeof stored.token === 'string' && stored.user ? stored : null;
  } catch {
    return null;
  }
}

export function useSession() {
  const [session, setSession] = useState<Session | null>(load);
  const [expired, setExpired] = useState(false);

  const signIn = useCallback((next: Session) => {
    localStorage.setItem(KEY, JSON.stringify(next));
    setExpired(false);
    setSession(next);
  }, []);

  const signOut = useCallback((becauseExpired = false) => {
    localStorage.removeItem(KEY);
    setExpired(becauseExpired);
    setSession(null);
  }, []);

  // A stored token may have expired or come from a server with another secret: check it once.
  const token = session?.token;
  useEffect(() => {
    if (!token) return;
    api.me(token).catch((error) => {
      if (error instanceof ApiError && error.status === 401) signOut(true);
    });
  }, [token, signOut]);

  return { session, expired, signIn, signOut };
}
