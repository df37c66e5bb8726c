import { useCallback, useEffect } from 'react';

import { navigate, parseRoute, usePath } from './router';
import { AuthScreen } from './screens/AuthScreen';
import { RoomList } from './screens/RoomList';
import { RoomPage } from './screens/RoomPage';
import { useSession } from './session';

/** Where to go after signing in: the page that sent the person to sign in, else the room list. */
function nextPath(): string {
  const next = new URLSearchParams(window.location.search).get('next');
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/rooms';
}

export function App() {
  const path = usePath();
  const route = parseRoute(path);
  const { session, expired, signIn, signOut } = useSession();
  const needsSession = route.name === 'rooms' || route.name === 'room' || route.name === 'home';
  const isAuthPage = route.name === 'login' || route.name === 'register';
  const onExpired = useCallback(() => signOut(true), [signOut]);

  useEffect(() => {
    if (!session && needsSession) {
      const next = route.name === 'home' ? '' : `?next=${encodeURIComponent(path)}`;
      navigate(`/login${next}`, true);
    } else if (session && (isAuthPage || route.name === 'home')) {
      navigate(nextPath(), true);
    }
  }, [session, needsSession, isAuthPage, route.name, path]);

  if (!session) {
    if (!isAuthPage) return null;
    return <AuthScreen mode={route.name === 'register' ? 'register' : 'login'} expired={expired} onSignedIn={signIn} />;
  }
  if (route.name === 'rooms') return <RoomList session={session} onSignOut={() => signOut()} />;
  if (route.name === 'room') {
    return <RoomPage key={route.roomId} session={session} roomId={route.roomId} onExpired={onExpired} />;
  }
  return null;
}
