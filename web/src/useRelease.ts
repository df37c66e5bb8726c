import { useEffect, useRef } from 'react';

/**
 * Run `release` when the component really unmounts. React's StrictMode unmounts and remounts
 * every component once in development; releasing camera tracks then would kill them for good.
 */
export function useReleaseOnUnmount(release: () => void): void {
  const latest = useRef(release);
  latest.current = release;
  const mounted = useRef(false);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
      setTimeout(() => {
        if (!mounted.current) latest.current();
      }, 0);
    };
  }, []);
}
