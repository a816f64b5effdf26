// Intercom's Messenger install snippet, "Basic JavaScript", as Intercom publishes it at
// https://developers.intercom.com/installing-intercom/web/installation (WORKSPACE_ID
// stands for the workspace's app id). The one reference for every copy of the loader
// that the tests, the legacy apps and the demo put in pages (tests/browser.rs
// `loader_is_the_official_one`): replace it with a new publication, never edit it.
(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/WORKSPACE_ID';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();
