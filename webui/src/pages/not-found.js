// The page for an unknown #/route.
import { h } from '../ui.js';

export const title = 'Page not found';

export function render(main) {
  main.append(h('h1', { tabindex: '-1', id: 'page-title' }, 'Page not found'),
    h('p', {}, 'There is no such page. ', h('a', { href: '#/dashboard' }, 'Go to the dashboard'), '.'));
}
